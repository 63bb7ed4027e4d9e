//! The error type of `dia-eval`.

/// Errors of scoring and metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] dia_data::Error),
    /// A transform failed.
    #[error(transparent)]
    Transform(#[from] dia_transforms::Error),
    /// The encoder could not be loaded.
    #[error(transparent)]
    Encoder(#[from] dia_encoder::Error),
    /// The checkpoint does not fit the evaluation config.
    #[error("{path}: the checkpoint was trained with {field} = {trained}, the evaluation config says {config}")]
    Mismatch {
        /// The checkpoint.
        path: String,
        /// The field that differs.
        field: &'static str,
        /// The checkpoint's value.
        trained: String,
        /// The config's value.
        config: String,
    },
    /// A file could not be read or written.
    #[error("{}: {msg}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// Inputs that cannot be scored (no normal or no anomalous sample, shape mismatch, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
