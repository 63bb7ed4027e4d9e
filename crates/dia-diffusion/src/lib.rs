//! The dissolving DDPM of DIA (spec §2).
//!
//! A UNet with the semantics and parameter names of `denoising_diffusion_pytorch` 0.27.12, the
//! cosine schedule, DDPM training, sampling, loading of reference checkpoints, and
//! `DiffusionDissolver`, which implements [`dia_transforms::Dissolve`] with one reverse
//! diffusion step (spec §2.3).
//!
//! **Status:** skeleton. The implementation lands with issue #4 of the tracker; until then
//! this crate only fixes its place in the workspace and its dependencies.
#![forbid(unsafe_code)]
