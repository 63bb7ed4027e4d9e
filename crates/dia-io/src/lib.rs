//! The files of dia: every file the project writes goes through here.
//!
//! - [`atomic`]: writes to a temporary name, syncs, renames — a crash never leaves a
//!   half-written file;
//! - [`save_safetensors`] / [`load_safetensors`] / [`read_metadata`]: named tensors with string
//!   metadata, the format of every checkpoint, resume file, statistics and embedding file; the
//!   metadata keys are the constants of [`keys`];
//! - [`read_pytorch`]: the tensors of a PyTorch zip file (the reference's checkpoints);
//! - [`hub`]: `hf://OWNER/REPO/FILE` references resolved through the Hugging Face Hub;
//! - [`run`]: a run directory's metrics trimmed back to its checkpoint, and the temporaries a
//!   killed write leaves behind.
//!
//! ```
//! use std::collections::BTreeMap;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("w.safetensors");
//! let w = candle_core::Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu)?;
//! let meta = BTreeMap::from([(dia_io::keys::EPOCH.to_string(), "1".to_string())]);
//! dia_io::save_safetensors(&path, &[("w".into(), w)], &meta)?;
//! assert_eq!(dia_io::read_metadata(&path)?[dia_io::keys::EPOCH], "1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod archive;
pub mod atomic;
pub mod csv;
mod error;
pub mod hub;
pub mod keys;
mod pickle_check;
pub mod run;
mod tensors;

pub use archive::zip_members;
pub use atomic::{write_atomic, write_atomic_path};
pub use error::{Error, Result};
pub use tensors::{
    file_checksum, fingerprint, load_safetensors, read_metadata, read_pytorch, save_safetensors,
};
