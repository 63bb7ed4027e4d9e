//! The configuration of a DDPM training run (`dia train-ddpm --config C.yaml`, spec §2.2).

use dia_data::DataSource;
use serde::{Deserialize, Serialize};

use crate::plateau::PlateauConfig;
use crate::unet::UnetConfig;

fn d_size() -> usize {
    32
}
fn d_timesteps() -> usize {
    1000
}
fn d_one() -> usize {
    1
}
fn d_lr() -> f64 {
    8e-5
}
fn d_betas() -> (f64, f64) {
    (0.9, 0.99)
}
fn d_clip() -> f64 {
    1.0
}
fn d_ema() -> f64 {
    0.995
}
fn d_ema_every() -> u64 {
    10
}
fn d_true() -> bool {
    true
}
fn d_save() -> usize {
    1000
}
fn d_samples() -> usize {
    16
}
fn d_sample_steps() -> usize {
    50
}

/// Everything that defines a DDPM training run. Unknown keys are errors.
///
/// The paper's recipe (spec §2.2): batch 256 × 2 accumulation = 512 per step, Adam lr 8e-5
/// betas (0.9, 0.99), clip 1.0, EMA 0.995 every 10 steps, 312,500 steps, 32 px.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdpmConfig {
    /// The dataset.
    pub data: DataSource,
    /// Classes to train on (names or indices): the normal class of the experiment. Empty: all.
    #[serde(default)]
    pub normal_classes: Vec<String>,
    /// Side of the square training images (32; 64 and 128 for the resolution study).
    #[serde(default = "d_size")]
    pub image_size: usize,
    /// The UNet.
    #[serde(default)]
    pub unet: UnetConfig,
    /// Diffusion timesteps T (1000).
    #[serde(default = "d_timesteps")]
    pub timesteps: usize,
    /// Images per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[serde(default = "d_one")]
    pub gradient_accumulate_every: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Adam learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Adam (β₁, β₂).
    #[serde(default = "d_betas")]
    pub adam_betas: (f64, f64),
    /// Gradient-norm clipping.
    #[serde(default = "d_clip")]
    pub max_grad_norm: f64,
    /// EMA decay.
    #[serde(default = "d_ema")]
    pub ema_decay: f64,
    /// EMA update period in steps.
    #[serde(default = "d_ema_every")]
    pub ema_update_every: u64,
    /// Zero padding on every side instead of resizing (MedMNIST: 28 + 2·2 = 32, as the
    /// reference's `Pad(2)`, spec §2.2); the images are then loaded at their own size.
    #[serde(default)]
    pub pad: usize,
    /// Random horizontal flip of the training images.
    #[serde(default = "d_true")]
    pub hflip: bool,
    /// Write a checkpoint every this many steps (and at the end).
    #[serde(default = "d_save")]
    pub save_every: usize,
    /// Write a grid of EMA samples every this many steps (0: only at the end).
    #[serde(default)]
    pub sample_every: usize,
    /// Images in a sample grid (0: no samples).
    #[serde(default = "d_samples")]
    pub num_samples: usize,
    /// DDIM steps of the preview samples.
    #[serde(default = "d_sample_steps")]
    pub sample_steps: usize,
    /// Seed of everything random in the run.
    #[serde(default)]
    pub seed: u64,
    /// Stop before `steps` once the smoothed loss has plateaued (`steps` is then the most the
    /// run takes); absent: train exactly `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plateau: Option<PlateauConfig>,
}

impl DdpmConfig {
    /// Checks the values the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.unet.validate().map_err(|e| e.to_string())?;
        let m = self.unet.size_multiple();
        if self.image_size == 0 || !self.image_size.is_multiple_of(m) {
            return Err(format!(
                "image_size {} must be a positive multiple of {m} for dim_mults {:?}",
                self.image_size, self.unet.dim_mults
            ));
        }
        if self.batch_size == 0 || self.steps == 0 || self.gradient_accumulate_every == 0 {
            return Err("batch_size, steps and gradient_accumulate_every must be positive".into());
        }
        if self.save_every == 0 || self.timesteps < 2 || self.ema_update_every == 0 {
            return Err("save_every and ema_update_every must be positive, timesteps ≥ 2".into());
        }
        if !(self.lr > 0.0 && self.max_grad_norm > 0.0) {
            return Err("lr and max_grad_norm must be positive".into());
        }
        self.validate_ranges()
    }

    /// The numeric fields' ranges, each error naming the key and the allowed range.
    fn validate_ranges(&self) -> Result<(), String> {
        // A 1024² DDPM batch is already tens of GB of activations; larger is a typo.
        if self.image_size > 1024 {
            return Err(format!(
                "image_size: {} is outside 1..=1024",
                self.image_size
            ));
        }
        if self.timesteps > 100_000 {
            return Err(format!(
                "timesteps: {} is outside 2..=100000",
                self.timesteps
            ));
        }
        if !(self.lr.is_finite() && self.max_grad_norm.is_finite()) {
            return Err("lr and max_grad_norm must be finite".into());
        }
        for (key, b) in [
            ("adam_betas.0", self.adam_betas.0),
            ("adam_betas.1", self.adam_betas.1),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{key}: {b} is outside [0, 1)"));
            }
        }
        if !(0.0..=1.0).contains(&self.ema_decay) {
            return Err(format!("ema_decay: {} is outside [0, 1]", self.ema_decay));
        }
        if self.num_samples > 1024 {
            return Err(format!(
                "num_samples: {} is outside 0..=1024",
                self.num_samples
            ));
        }
        if let Some(p) = &self.plateau {
            p.validate()?;
        }
        if 2 * self.pad >= self.image_size {
            return Err(format!(
                "pad: {} must leave an image inside image_size {}",
                self.pad, self.image_size
            ));
        }
        Ok(())
    }
}
