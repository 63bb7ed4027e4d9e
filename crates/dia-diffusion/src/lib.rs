//! The dissolving DDPM of DIA (spec §2).
//!
//! - [`Unet`]: the noise-prediction network of `denoising_diffusion_pytorch` 0.27.12, with its
//!   parameter names (spec §2.1, §8), on the gemm layers of `dia-nn`.
//! - [`Schedule`]: the cosine schedule and the 13 buffers of `GaussianDiffusion`.
//! - [`GaussianDiffusion`]: the training loss, `q_sample`, the reverse step `p_sample`.
//! - [`sample`]: ancestral and DDIM sampling loops.
//! - [`checkpoint`]: reading lucidrains Trainer `.pt` files and our safetensors checkpoints.
//! - [`DiffusionDissolver`]: DIA's dissolving transformation (spec §2.3) as a
//!   [`dia_transforms::Dissolve`].
//! - [`train`](mod@train): DDPM training (spec §2.2) with Adam, gradient clipping, EMA and exact
//!   resume; [`data`] decodes its images as the reference does, [`plateau`] stops it when the
//!   loss has flattened, [`strength`] measures how much the result dissolves.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use dia_diffusion::{GaussianDiffusion, Schedule, Unet, UnetConfig};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let cfg = UnetConfig { dim: 8, dim_mults: vec![1, 2], ..UnetConfig::default() };
//! let (unet, _) = Unet::init(&cfg, &mut rng, &Device::Cpu)?;
//! let ddpm = GaussianDiffusion::new(unet, Schedule::cosine(1000));
//! let x = Tensor::full(0.5f32, (2, 3, 8, 8), &Device::Cpu)?;
//! // One reverse step at t = 50: the clamped x̂₀ that DIA calls "dissolved".
//! let (x0, _eps) = ddpm.x_start(&x, 50)?;
//! assert_eq!(x0.dims(), [2, 3, 8, 8]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod attention;
pub mod checkpoint;
mod config;
pub mod data;
mod diffusion;
mod dissolver;
mod error;
mod layers;
pub mod macs;
mod optim;
pub mod plateau;
pub mod sample;
mod schedule;
pub mod strength;
pub mod train;
mod unet;

pub use config::DdpmConfig;
pub use diffusion::{randn_like, GaussianDiffusion};
pub use dissolver::DiffusionDissolver;
// The dissolver's settings are plain data in dia-transforms; re-exported for users of this crate.
pub use dia_transforms::{DissolverConfig, Resolution, StepSampler};
pub use error::{Error, Result};
pub use optim::{clip_grad_norm, Adam, Ema};
pub use schedule::{cosine_betas, Schedule, BUFFER_NAMES};
pub use unet::{parameter_count, Unet, UnetConfig};
