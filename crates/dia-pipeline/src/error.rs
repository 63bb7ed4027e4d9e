//! The error type of the pipeline: every lower crate's error kept as its source.

use std::path::PathBuf;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written (dia-io).
    #[error(transparent)]
    Files(#[from] dia_io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data could not be read or written.
    #[error(transparent)]
    Data(#[from] dia_data::Error),
    /// A transform failed.
    #[error(transparent)]
    Transform(#[from] dia_transforms::Error),
    /// The DDPM could not be trained, loaded or run.
    #[error(transparent)]
    Diffusion(#[from] dia_diffusion::Error),
    /// The encoder could not be built or loaded.
    #[error(transparent)]
    Encoder(#[from] dia_encoder::Error),
    /// Encoder training failed.
    #[error(transparent)]
    Train(#[from] dia_contrastive::Error),
    /// The evaluation failed.
    #[error(transparent)]
    Eval(#[from] dia_eval::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (a report) could not be read.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A YAML config could not be read.
    #[error("{}: invalid config: {source}", path.display())]
    Yaml {
        /// The file (or what the text was).
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A checkpoint's statistics are missing or belong to another checkpoint.
    #[error("{0}")]
    Statistics(String),
    /// The device asked for cannot be opened.
    #[error("{0}")]
    Device(String),
    /// A config is valid YAML but not a valid experiment.
    #[error("invalid config: {0}")]
    Config(String),
    /// One cell of a grid failed.
    #[error("{cell}: {source}")]
    Cell {
        /// Which cell (`method class seed N`).
        cell: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

/// Result alias of the pipeline.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn yaml_err(path: &std::path::Path) -> impl FnOnce(serde_yaml::Error) -> Error + '_ {
    move |source| Error::Yaml {
        path: path.to_path_buf(),
        source,
    }
}
