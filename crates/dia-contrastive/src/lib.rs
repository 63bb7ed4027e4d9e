//! CSI and DIA contrastive training (spec §5).
//!
//! Batch construction with dissolved negatives (spec §5.2), NT-Xent and NT-Xent-neg (§5.5),
//! LARS and the warm-up + cosine schedule (§5.6), and the training loop with checkpoints.
//!
//! **Status:** the losses ([`nt_xent`], [`nt_xent_neg`]), [`Lars`], the schedule
//! ([`WarmupCosine`], [`LrStepper`]), batch construction ([`BatchBuilder`]) and the step
//! ([`train_step`]) and the training loop with run directories, checkpoints and exact resume
//! ([`train`](fn@train)) are here. The trainer takes its dissolver (blur, median, `blurnone`, or
//! the diffusion dissolver of `dia-diffusion`, config section `diffusion`) as a
//! `&dyn Dissolve` built by its caller (`dia_pipeline::dissolver`); it never builds one, so this
//! crate does not depend on the DDPM. Not yet: model selection
//! on a validation split and the optional linear probe (the last epoch is what a run keeps).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use dia_contrastive::{normalize, nt_xent};
//! let z = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 0.1], [0.1, 1.]], &Device::Cpu)?;
//! let z = normalize(&z)?;
//! let loss = nt_xent(&z.matmul(&z.t()?)?, 0.5)?;
//! assert!(loss.to_scalar::<f32>()? > 0.0);
//! # Ok::<(), candle_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod error;
pub mod lars;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod step;
pub mod train;

pub use batch::{BatchBuilder, ContrastiveBatch};
pub use config::{DiffusionSpec, EncoderSpec, Mode, TrainConfig};
pub use error::{Error, Result};
pub use lars::{Lars, LarsConfig};
pub use loss::{normalize, nt_xent, nt_xent_neg, NegMode};
pub use optim::sgd_step;
pub use schedule::{LrStepper, WarmupCosine};
pub use step::{losses, train_step, StepLosses, TEMPERATURE};
pub use train::{epochs_done, train, RunOptions, StepInfo, TrainSummary, TRAIN_FILE};
