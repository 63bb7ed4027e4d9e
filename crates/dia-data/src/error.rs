//! The error type of `dia-data`. Every error about a file names the file.

use std::path::{Path, PathBuf};

/// Errors returned by the data layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exists but its content is not what it should be (corrupt image, bad header,
    /// truncated data, wrong shape).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A dataset layout problem: a missing split, an empty class folder, an unknown class.
    #[error("{}: {msg}", path.display())]
    Layout {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An argument outside what is supported.
    #[error("{0}")]
    Invalid(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Writing a file failed (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub(crate) fn layout_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Layout {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}
