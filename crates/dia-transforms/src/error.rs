//! The error type of `dia-transforms`.

/// Errors returned by the transforms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The input is not a batch of images.
    #[error("expected a batch of images with shape (N, C, H, W), got {0:?}")]
    NotNchw(Vec<usize>),
    /// An argument is outside what the operation supports.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The operation that refused the argument.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A `shift_trans_type` name that the reference code does not know.
    #[error("unknown shift_trans_type {name:?}; expected one of: {expected}")]
    UnknownShiftKind {
        /// The name that was given.
        name: String,
        /// The accepted names, comma-separated.
        expected: String,
    },
    /// A dissolver implemented outside this crate failed.
    #[error("dissolver failed: {0}")]
    Dissolver(Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        msg: msg.into(),
    }
}
