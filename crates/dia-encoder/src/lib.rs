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
//! Checkpoints: [`load_reference_checkpoint`] imports the reference's PyTorch `.model` files
//! (no code is executed); [`save_checkpoint`] / [`load_checkpoint`] use safetensors with the
//! same names and the configuration in the metadata.
//!
//! Training lives in `dia-contrastive`; evaluation in `dia-eval`.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod macs;
pub mod resnet;

pub use checkpoint::{
    infer_config, load_checkpoint, load_reference_checkpoint, read_reference_checkpoint,
    save_checkpoint,
};
pub use error::{Error, Result};
// The model's tensors are collected by dia-nn's `Params`; `Source` says where they come from.
pub use dia_nn::Source;
pub use resnet::{Arch, EncoderConfig, EncoderOutput, ResNet18};
