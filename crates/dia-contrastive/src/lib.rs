//! CSI and DIA contrastive training (spec §5).
//!
//! Batch construction with dissolved negatives (spec §5.2), NT-Xent and NT-Xent-neg (§5.5),
//! LARS and the warm-up + cosine schedule (§5.6), and the training loop with checkpoints.
//!
//! **Status:** the CSI loss ([`nt_xent`], [`normalize`]) and a plain SGD step are here (they
//! drive `dia bench`); the DIA loss, LARS, the schedule and the training loop land with issue #5.
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

pub mod loss;
pub mod optim;

pub use loss::{normalize, nt_xent};
pub use optim::sgd_step;
