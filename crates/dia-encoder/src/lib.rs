//! ResNet-18 encoders with SimCLR and shift heads for CSI and DIA (spec §5.4, §8).
//!
//! [`ResNet18`] builds `resnet18` (CIFAR stem) or `resnet18_imagenet` with the heads of the
//! reference's `BaseModel` and its state-dict names, on the fast layers of `dia-nn`. Weights are
//! initialised from a seeded generator ([`Source::Init`]) or taken from named tensors
//! ([`Source::Tensors`]), which checks every name and shape.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let cfg = EncoderConfig { width: 8, ..EncoderConfig::new(Arch::ResNet18ImageNet) };
//! let model = ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu)?;
//! let x = Tensor::full(0.5f32, (2, 3, 64, 64), &Device::Cpu)?;
//! let out = model.forward_t(&x, true)?; // training mode: batch statistics
//! assert_eq!(out.penultimate.dims(), [2, 64]);
//! // Reloading the state dict gives the same model.
//! let sd = model.state_dict()?;
//! let again = ResNet18::new(cfg, Source::Tensors(&sd), &Device::Cpu)?;
//! assert_eq!(again.vars().len(), model.vars().len());
//! # Ok::<(), dia_encoder::Error>(())
//! ```
//!
//! **Status:** the encoders are here; loading reference `.model` checkpoints lands with the rest
//! of issue #5.
#![warn(missing_docs)]

pub mod error;
pub mod params;
pub mod resnet;

pub use error::{Error, Result};
pub use params::{Builder, ConvInit, Source};
pub use resnet::{Arch, EncoderConfig, EncoderOutput, ResNet18};
