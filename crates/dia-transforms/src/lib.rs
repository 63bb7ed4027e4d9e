//! Image transforms of DIA ("Dissolving Is Amplifying", ECCV 2024, arXiv 2302.14696) and CSI,
//! on batches of images: f32, NCHW, values in [0, 1].
//!
//! What is here, with the sections of the spec (`dia-spec.md`) it implements:
//! - shifts: rotation by k·90° and cut-permutation, their labels, and the reference's
//!   `shift_trans_type` names (§4) — [`Shift`], [`ShiftKind`], [`shift_labels`];
//! - blurs with the reference's kernels (§3) — [`gaussian_blur`], [`median_blur`];
//! - resizing as PyTorch's `F.interpolate` (§2.3) — [`resize_bilinear`], [`resize_nearest`],
//!   [`pad_zeros`], [`center_crop`];
//! - the SimCLR augmentation of CSI (§5.3) — [`SimclrAugmentation`], [`hflip`];
//! - the [`Dissolve`] trait and the blur dissolvers of the baselines (§3) — [`BlurDissolver`];
//!   the diffusion dissolver's settings as plain data (§2.3) — [`DissolverConfig`].
//!
//! Every random choice comes from a caller-supplied generator; nothing uses candle's
//! unseedable CPU random functions.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use dia_transforms::{shift_labels, Shift, SimclrAugmentation, K_SHIFT};
//! use rand::SeedableRng;
//!
//! let x = Tensor::full(0.5f32, (2, 3, 32, 32), &Device::Cpu)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
//! // The CSI batch of one view: every shift of every image, then the SimCLR augmentation.
//! let shifted: Vec<Tensor> =
//!     (0..K_SHIFT).map(|k| Shift::Rotation.apply(&x, k)).collect::<Result<_, _>>()?;
//! let batch = Tensor::cat(&shifted, 0)?;
//! let views = SimclrAugmentation::train().augment(&batch, &mut rng)?;
//! assert_eq!(views.dims(), [8, 3, 32, 32]);
//! assert_eq!(shift_labels(K_SHIFT, 2), [0, 0, 1, 1, 2, 2, 3, 3]);
//! # Ok::<(), dia_transforms::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod blur;
pub mod color;
pub mod crop;
pub mod dissolve;
pub mod dissolver_config;
pub mod error;
pub mod kind;
pub mod resize;
pub mod shift;
pub mod simclr;

pub use batch::ImageBatch;
pub use blur::{gaussian_blur, gaussian_kernel_1d, median_blur};
pub use color::{ColorJitter, JitterFactors};
pub use crop::{hflip, random_hflip, resized_crop, CropBox, RandomResizedCrop};
pub use dissolve::{BlurDissolver, BlurFilter, Dissolve};
pub use dissolver_config::{DissolverConfig, Resolution, StepSampler};
pub use error::{Error, Result};
pub use kind::{DissolveKind, ShiftKind};
pub use resize::{center_crop, pad_zeros, resize_bilinear, resize_nearest};
pub use shift::{shift_labels, Shift, K_SHIFT};
pub use simclr::{AugmentParams, SampleAugment, SimclrAugmentation};
