//! The error type of `dia-encoder`.

/// Errors of the encoders.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Loading named tensors failed: missing, unexpected or mis-shaped entries.
    #[error("{0}")]
    Weights(String),
    /// An invalid configuration.
    #[error("{0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
