//! The error type of `dia-io`: every error names its file.

use std::path::{Path, PathBuf};

/// Errors of file I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// Another process holds the directory's [`RunLock`](crate::run::RunLock).
    #[error(
        "{} is in use by another dia process ({holder}); wait for it to finish or use another directory",
        dir.display()
    )]
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// Who holds it (process id and command line).
        holder: String,
    },
    /// A new run was asked for in a directory that holds one.
    #[error(
        "{} already holds a run; continue it with --resume {0} or choose another --run",
        dir.display()
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// A resume was asked for, but the run has no checkpoint to resume from.
    #[error(
        "{}: nothing to resume ({file} is missing: the run stopped before its first checkpoint); start it again without --resume",
        dir.display()
    )]
    NothingToResume {
        /// The run directory.
        dir: PathBuf,
        /// The resume file that is missing.
        file: String,
    },
    /// An `hf://` reference could not be resolved.
    #[error("{spec}: {msg}")]
    Hub {
        /// The reference.
        spec: String,
        /// Why.
        msg: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn format_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}
