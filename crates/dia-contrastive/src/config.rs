//! The configuration of a training run (`dia train --config C.yaml`).

use std::path::PathBuf;

use dia_data::DataSource;
use dia_encoder::Arch;
use dia_transforms::{DissolveKind, DissolverConfig, ShiftKind};
use serde::{Deserialize, Serialize};

use crate::loss::NegMode;

/// The method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CSI: two clean view groups (`simclr_CSI`).
    Csi,
    /// DIA: plus the dissolved group as extra negatives (`simclr_DIA`).
    Dia,
}

/// The encoder of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// `resnet18` (28–32 px) or `resnet18_imagenet`.
    pub arch: Arch,
    /// Base width (64 in ResNet-18).
    #[serde(default = "default_width")]
    pub width: usize,
}

fn default_width() -> usize {
    64
}
fn default_lr() -> f64 {
    0.1
}
fn default_warmup() -> usize {
    10
}
fn default_multiplier() -> f64 {
    10.0
}
fn default_kernel() -> usize {
    7
}
fn default_one() -> usize {
    1
}

/// Everything that defines a training run. Unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The dataset.
    pub data: DataSource,
    /// Side of the square training images (resized on load); `None` keeps the files' size.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Normal classes (names or indices) for the one-class protocol; empty: every training
    /// class is normal (multi-class).
    #[serde(default)]
    pub normal_classes: Vec<String>,
    /// CSI or DIA.
    pub mode: Mode,
    /// The reference's `shift_trans_type`: `rotation`/`cutperm` for CSI;
    /// `{diffusion,blurgaussian,blurmedian,blurnone}_{rotation,cutperm}` for DIA.
    pub shift_trans_type: ShiftKind,
    /// The encoder.
    pub encoder: EncoderSpec,
    /// Epochs (the reference: 1000).
    pub epochs: usize,
    /// Images per batch before shifts and views (the reference: 32).
    pub batch_size: usize,
    /// Base learning rate (0.1; ×10 after warm-up).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Warm-up epochs (10).
    #[serde(default = "default_warmup")]
    pub warmup_epochs: usize,
    /// Warm-up multiplier (10).
    #[serde(default = "default_multiplier")]
    pub warmup_multiplier: f64,
    /// At most this many iterations per epoch (the reference caps DIA at 201); the LR still
    /// advances by 1/(full loader length) per iteration, as the reference.
    #[serde(default)]
    pub max_iterations_per_epoch: Option<usize>,
    /// Blur kernel size of the blur dissolvers (7).
    #[serde(default = "default_kernel")]
    pub kernel_size: usize,
    /// `blurnone` / blur at a constant resolution (nearest round trip), the reference's
    /// `--resize_to_constant`.
    #[serde(default)]
    pub resize_to_constant: Option<usize>,
    /// NT-Xent-neg masking (DIA).
    #[serde(default = "default_neg_mode")]
    pub neg_mode: NegMode,
    /// Blur all three view groups, as the reference's blur baselines do (spec §10.7).
    #[serde(default)]
    pub blur_all_views: bool,
    /// The DDPM, for `shift_trans_type: diffusion_*`.
    #[serde(default)]
    pub diffusion: Option<DiffusionSpec>,
    /// Seed of everything random in the run.
    #[serde(default)]
    pub seed: u64,
    /// Write a checkpoint every this many epochs (and at the end).
    #[serde(default = "default_one")]
    pub save_every: usize,
}

/// The DDPM of the diffusion dissolver (`shift_trans_type: diffusion_*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionSpec {
    /// A DDPM checkpoint: `model.safetensors` of `dia train-ddpm` (the raw weights, as DIA
    /// uses), or a lucidrains Trainer `model-N.pt`.
    pub checkpoint: PathBuf,
    /// Timestep range, sampler, resolution handling (the reference's `--diffusion_*`).
    #[serde(default)]
    pub dissolver: DissolverConfig,
}

fn default_neg_mode() -> NegMode {
    NegMode::ShiftedRemoved
}

impl TrainConfig {
    /// Checks the combinations the types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let d = self.shift_trans_type.dissolve;
        match self.mode {
            Mode::Csi if d != DissolveKind::None => Err(format!(
                "mode csi takes shift_trans_type rotation or cutperm, not {}",
                self.shift_trans_type
            )),
            Mode::Dia if d == DissolveKind::None => Err(format!(
                "mode dia needs a dissolving shift_trans_type (diffusion_*, blurgaussian_*, blurmedian_*, blurnone_*), not {}",
                self.shift_trans_type
            )),
            Mode::Dia if d == DissolveKind::Diffusion && self.diffusion.is_none() => Err(format!(
                "shift_trans_type {} needs a `diffusion: {{checkpoint: PATH}}` section (train one with dia train-ddpm)",
                self.shift_trans_type
            )),
            _ if d != DissolveKind::Diffusion && self.diffusion.is_some() => Err(format!(
                "a `diffusion` section is only used with diffusion_* shift_trans_types, not {}",
                self.shift_trans_type
            )),
            _ if self.epochs == 0 || self.batch_size == 0 || self.save_every == 0 => {
                Err("epochs, batch_size and save_every must be positive".into())
            }
            _ if self.max_iterations_per_epoch == Some(0) => Err("max_iterations_per_epoch must be positive".into()),
            _ => self.validate_ranges(),
        }
    }

    /// The numeric fields' ranges, each error naming the key and the allowed range.
    fn validate_ranges(&self) -> Result<(), String> {
        const MAX_SIDE: usize = dia_data::MAX_IMAGE_SIZE;
        for (key, v) in [
            ("image_size", self.image_size),
            ("resize_to_constant", self.resize_to_constant),
        ] {
            if let Some(v) = v.filter(|v| !(1..=MAX_SIDE).contains(v)) {
                return Err(format!("{key}: {v} is outside 1..={MAX_SIDE}"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr: {} must be finite and positive", self.lr));
        }
        if !(self.warmup_multiplier.is_finite() && self.warmup_multiplier >= 1.0) {
            return Err(format!(
                "warmup_multiplier: {} must be finite and at least 1",
                self.warmup_multiplier
            ));
        }
        if !(1..=99).contains(&self.kernel_size) {
            return Err(format!(
                "kernel_size: {} is outside 1..=99",
                self.kernel_size
            ));
        }
        if !(1..=4096).contains(&self.encoder.width) {
            return Err(format!(
                "encoder.width: {} is outside 1..=4096",
                self.encoder.width
            ));
        }
        if let Some(d) = &self.diffusion {
            d.dissolver
                .validate()
                .map_err(|e| format!("diffusion.{e}"))?;
        }
        Ok(())
    }
}
