//! The DIA / CSI pipeline: the only crate that sees both the DDPM (`dia-diffusion`) and the
//! encoder (`dia-encoder`, trained by `dia-contrastive`, evaluated by `dia-eval`).
//!
//! - [`dissolver`]: the [`Dissolve`](dia_transforms::Dissolve) a training config asks for
//!   (spec §2.3, §3), loading the DDPM for the diffusion kinds;
//! - [`evaluate_checkpoint`]: one trained encoder scored on its test split (spec §6), with the
//!   report files and the statistics `dia predict` reads; [`read_report`] reads them back typed;
//! - [`experiment`]: grids of methods × normal classes × seeds — config, resumable runner with
//!   one DDPM per class, typed results ([`CellResult`] from each cell's
//!   [`Report`](dia_eval::report::Report)) and the tables;
//! - [`Scorer`]: new images scored like test images of the evaluation (`dia predict`);
//! - [`Quickstart`]: the end-to-end run on the embedded sample.
//!
//! Long work reports through [`Progress`] / [`Tasks`] (the `dia` binary draws progress bars;
//! [`Quiet`] ignores it). Every function takes the candle `Device` from its caller.
//!
//! ```no_run
//! use dia_pipeline::{experiment::{run_grid, ExperimentConfig}, Quiet};
//! let cfg = ExperimentConfig::read("configs/fashion-mnist-cpu-experiment.yaml".as_ref())?;
//! let results = run_grid(&cfg, "runs/grid".as_ref(), 1, &candle_core::Device::Cpu, &Quiet)?;
//! for r in &results {
//!     println!("{} {} seed {}: AUROC {:.4}", r.method, r.class, r.seed, r.auroc);
//! }
//! # Ok::<(), dia_pipeline::Error>(())
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod ddpm;
pub mod ddpm_report;
pub mod device;
mod dissolver;
mod embed;
mod error;
mod evaluate;
pub mod experiment;
mod predict;
pub mod preview;
mod progress;
mod quickstart;
pub mod run;

pub use dissolver::dissolver;
pub use embed::{embed, Embeddings};
pub use error::{Error, Result};
pub use evaluate::{evaluate_checkpoint, load_encoder, read_report, EvalOptions};
pub use experiment::CellResult;
pub use predict::Scorer;
pub use progress::{Progress, Quiet, Tasks};
pub use quickstart::{Quickstart, QuickstartOutcome};
