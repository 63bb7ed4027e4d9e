//! The settings of DIA's diffusion dissolver as plain data (spec §2.3; the reference's
//! `--diffusion_*` options): the timestep sampler, how a batch reaches the DDPM's resolution,
//! and the offsets. They live here, beside the [`Dissolve`](crate::Dissolve) trait, so that a
//! training config can hold them without depending on the DDPM crate, which implements them
//! (`dia_diffusion::DiffusionDissolver`).

use serde::{Deserialize, Serialize};

/// The distribution of `s` in `t = ⌊(s·(u − o) + o)·step_scale⌋` (`--diffusion_scheduler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSampler {
    /// U(0, 1), the reference default.
    #[default]
    Uniform,
    /// Beta(1, 1.7).
    BetaSkewed,
    /// Beta(1.7, 1).
    BetaSkewedReversed,
    /// The cyclic Beta schedule over epochs (period 30, mean value 20).
    BetaByEpoch,
    /// [`StepSampler::BetaByEpoch`] with α and β swapped.
    BetaByEpochReversed,
}

impl StepSampler {
    /// (α, β) of the Beta distribution at `epoch`, or `None` for the uniform sampler.
    pub fn beta_params(&self, epoch: usize) -> Option<(f64, f64)> {
        // diffuser_sampler_by_epoch(epoch, T_max=30, mean_value=20).
        let by_epoch = || {
            let step = (20.0 - 2.0) / 30.0 * 2.0;
            let e = (epoch % 30) as f64;
            if e < 15.0 {
                (20.0, step * e + 2.0)
            } else {
                (step * (30.0 - e - 1.0) + 2.0, 20.0)
            }
        };
        match self {
            StepSampler::Uniform => None,
            StepSampler::BetaSkewed => Some((1.0, 1.7)),
            StepSampler::BetaSkewedReversed => Some((1.7, 1.0)),
            StepSampler::BetaByEpoch => Some(by_epoch()),
            StepSampler::BetaByEpochReversed => {
                let (a, b) = by_epoch();
                Some((b, a))
            }
        }
    }
}

/// How a batch is brought to the DDPM's resolution and back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Identity when the input has the DDPM's size; zero-pad by 2 and centre-crop back when it
    /// is 4 pixels smaller (MedMNIST 28 → 32); otherwise bilinear resize there and back.
    #[default]
    Auto,
    /// Bilinear resize (align_corners=False, no antialias) there and back.
    Resize,
    /// Zero padding there, centre crop back.
    Pad,
    /// No change (the input must have the DDPM's size).
    Identity,
}

/// The dissolver's settings (the reference's `--diffusion_*` options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DissolverConfig {
    /// Lower offset o (`--diffusion_offset`), 0.3.
    pub offset: f64,
    /// Upper offset u (`--diffusion_upper_offset`), 1.0.
    pub upper_offset: f64,
    /// `step_scale`, 100.
    pub step_scale: f64,
    /// Draw t at random (training); when false, `t = ⌊o·step_scale⌋` (evaluation).
    pub random: bool,
    /// The distribution of s.
    pub sampler: StepSampler,
    /// How to reach the DDPM's resolution.
    pub resolution: Resolution,
    /// Map [0,1] → [−1,1] around the UNet (not the reference's behaviour).
    pub normalize_input: bool,
    /// Images per UNet call (bounds memory).
    pub chunk: usize,
}

impl Default for DissolverConfig {
    fn default() -> Self {
        Self {
            offset: 0.3,
            upper_offset: 1.0,
            step_scale: 100.0,
            random: true,
            sampler: StepSampler::Uniform,
            resolution: Resolution::Auto,
            normalize_input: false,
            chunk: 256,
        }
    }
}

impl DissolverConfig {
    /// Checks every field's range, naming the key and the allowed range:
    /// `0 ≤ offset ≤ upper_offset ≤ 1` (the timestep `t` lies in
    /// `[offset, upper_offset] · step_scale`), `step_scale` finite and positive, `chunk ≥ 1`.
    /// Whether `upper_offset · step_scale` fits the DDPM's `T` is checked where the DDPM is
    /// known (`dia_diffusion::DiffusionDissolver::new`).
    ///
    /// ```
    /// use dia_transforms::DissolverConfig;
    /// assert!(DissolverConfig::default().validate().is_ok());
    /// let bad = DissolverConfig { offset: 0.9, upper_offset: 0.5, ..DissolverConfig::default() };
    /// assert!(bad.validate().unwrap_err().contains("offset"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.offset) {
            return Err(format!(
                "dissolver.offset: {} is outside [0, 1]",
                self.offset
            ));
        }
        if !(self.offset..=1.0).contains(&self.upper_offset) {
            return Err(format!(
                "dissolver.upper_offset: {} is outside [offset = {}, 1]",
                self.upper_offset, self.offset
            ));
        }
        if !(self.step_scale.is_finite() && self.step_scale > 0.0) {
            return Err(format!(
                "dissolver.step_scale: {} must be finite and positive",
                self.step_scale
            ));
        }
        if self.chunk == 0 {
            return Err("dissolver.chunk: must be at least 1".into());
        }
        Ok(())
    }
}
