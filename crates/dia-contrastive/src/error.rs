//! The error type of `dia-contrastive`'s training runs.

use std::path::PathBuf;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
    /// A tensor operation failed (including a non-finite loss).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] dia_data::Error),
    /// The encoder could not be built, loaded or saved.
    #[error(transparent)]
    Encoder(#[from] dia_encoder::Error),
    /// A transform or the dissolver failed.
    #[error(transparent)]
    Transform(#[from] dia_transforms::Error),
    /// The loss of a step is not finite; the parameters were not updated.
    #[error("the loss is not finite ({0:?}); the parameters were not updated")]
    Diverged(crate::step::StepLosses),
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// A run file could not be read or written.
    #[error("{}: {msg}", path.display())]
    Run {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
}

/// Result alias of the training run.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn run_err(path: &std::path::Path, msg: impl std::fmt::Display) -> Error {
    Error::Run {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}
