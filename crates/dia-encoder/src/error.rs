//! The error type of `dia-encoder`.

/// Errors of the encoders.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Loading named tensors failed: every missing, unexpected or mis-shaped entry.
    #[error(transparent)]
    Weights(#[from] dia_nn::params::Mismatch),
    /// The tensors do not describe a ResNet-18 whose configuration can be inferred.
    #[error("{0}")]
    Shapes(String),
    /// A checkpoint file is not what it should be (format, metadata).
    #[error("{}: {msg}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A problem with the model in a checkpoint file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// The problem.
        #[source]
        source: Box<Error>,
    },
    /// An invalid configuration.
    #[error("{0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
