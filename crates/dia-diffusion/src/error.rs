//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in dia-diffusion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A transform (resize, pad, crop) failed.
    #[error(transparent)]
    Transform(#[from] dia_transforms::Error),
    /// Loading data failed.
    #[error(transparent)]
    Data(#[from] dia_data::Error),
    /// A set of weights does not fit the UNet: every missing, unexpected and mis-shaped
    /// tensor.
    #[error("weights do not match the UNet:\n{0}")]
    Mismatch(#[from] dia_nn::params::Mismatch),
    /// Tensors that describe no UNet (or schedule) whose shape can be inferred.
    #[error("weights do not match the UNet:\n{0}")]
    Weights(String),
    /// A checkpoint file could not be read or written.
    #[error("{}: {msg}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An invalid configuration or argument.
    #[error("{0}")]
    Config(String),
    /// A file of a run could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Training diverged (non-finite loss).
    #[error("training diverged: loss is {loss} at step {step}")]
    Diverged {
        /// The optimiser step.
        step: usize,
        /// The loss value.
        loss: f64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
