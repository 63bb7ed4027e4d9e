//! DIA's dissolving transformation (spec §2.3): one reverse diffusion step applied to a clean
//! image, keeping the clamped x̂₀.
//!
//! For each call: draw `t = ⌊(s·(u − o) + o)·100⌋` with `s` from the step sampler (default
//! U(0, 1), o = 0.3, u = 1.0, so t ∈ {30, …, 99}); bring the batch to the DDPM's resolution
//! (bilinear without antialias, or zero-padding for 28-px MedMNIST, or nothing); compute
//! `clamp(√(1/ᾱ_t)·y − √(1/ᾱ_t − 1)·ε_θ(y, t), −1, 1)`; bring it back. By default the [0, 1]
//! input goes into the UNet unnormalised and the [−1, 1]-clamped output is returned as is,
//! exactly as the reference does; `normalize_input` maps [0,1]→[−1,1] before and back after
//! (an experiment, not the paper's setting).

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use dia_transforms::resize::{center_crop, pad_zeros, resize_bilinear};
use dia_transforms::Dissolve;
use rand::{Rng, RngCore};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::diffusion::GaussianDiffusion;
use crate::error::{Error, Result};

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

/// The diffusion dissolver: a DDPM, its training resolution, and the settings.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_diffusion::{DiffusionDissolver, DissolverConfig, GaussianDiffusion, Schedule, Unet, UnetConfig};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let cfg = UnetConfig { dim: 8, dim_mults: vec![1, 2], ..UnetConfig::default() };
/// let (unet, _) = Unet::init(&cfg, &mut rng, &Device::Cpu)?;
/// let d = DiffusionDissolver::new(GaussianDiffusion::new(unet, Schedule::cosine(1000)), 8,
///     DissolverConfig::default())?;
/// let x = Tensor::full(0.5f32, (2, 3, 28, 28), &Device::Cpu)?;
/// assert_eq!(d.dissolve_at(&x, 50)?.dims(), [2, 3, 28, 28]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DiffusionDissolver {
    ddpm: GaussianDiffusion,
    image_size: usize,
    cfg: DissolverConfig,
    epoch: AtomicUsize,
}

impl DiffusionDissolver {
    /// A dissolver with a DDPM trained at `image_size`.
    pub fn new(ddpm: GaussianDiffusion, image_size: usize, cfg: DissolverConfig) -> Result<Self> {
        let t_max = ddpm.schedule().timesteps();
        let hi = cfg.upper_offset.max(cfg.offset) * cfg.step_scale;
        if !(cfg.offset >= 0.0 && hi.is_finite() && (hi as usize) <= t_max && cfg.chunk > 0) {
            return Err(Error::Config(format!(
                "dissolver: offsets {}..{} × step_scale {} must lie in 0..={t_max}, chunk > 0",
                cfg.offset, cfg.upper_offset, cfg.step_scale
            )));
        }
        Ok(Self {
            ddpm,
            image_size,
            cfg,
            epoch: AtomicUsize::new(0),
        })
    }

    /// The DDPM.
    pub fn ddpm(&self) -> &GaussianDiffusion {
        &self.ddpm
    }

    /// The settings.
    pub fn config(&self) -> &DissolverConfig {
        &self.cfg
    }

    /// Draws a timestep as the reference does.
    pub fn sample_t(&self, rng: &mut dyn RngCore) -> usize {
        let c = &self.cfg;
        if !c.random {
            // int(offset·100) truncates (spec §13.3).
            return (c.offset * c.step_scale) as usize;
        }
        let s: f64 = match c.sampler.beta_params(self.epoch.load(Ordering::Relaxed)) {
            None => rng.random::<f64>(),
            Some((a, b)) => Beta::new(a, b).map(|d| d.sample(rng)).unwrap_or(0.5),
        };
        let t = ((s * (c.upper_offset - c.offset) + c.offset) * c.step_scale) as usize;
        t.min(self.ddpm.schedule().timesteps() - 1)
    }

    fn to_ddpm(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let r = self.image_size;
        Ok(match (self.cfg.resolution, h == r && w == r) {
            (Resolution::Identity, true) | (Resolution::Auto, true) => x.clone(),
            (Resolution::Identity, false) => {
                return Err(Error::Config(format!(
                "dissolver: input is {h}x{w} but the DDPM works at {r}x{r} (resolution: identity)"
            )))
            }
            (Resolution::Pad, _) | (Resolution::Auto, _) if h == w && h + 4 == r => {
                pad_zeros(x, 2)?
            }
            (Resolution::Pad, _) => {
                if h > r || w > r || !(r - h).is_multiple_of(2) || h != w {
                    return Err(Error::Config(format!(
                        "dissolver: cannot pad {h}x{w} evenly to {r}x{r}"
                    )));
                }
                pad_zeros(x, (r - h) / 2)?
            }
            _ => resize_bilinear(x, (r, r))?,
        })
    }

    fn back_from_ddpm(&self, y: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (_, _, yh, yw) = y.dims4()?;
        if (yh, yw) == (h, w) {
            return Ok(y.clone());
        }
        let pads = matches!(self.cfg.resolution, Resolution::Pad)
            || (self.cfg.resolution == Resolution::Auto && h == w && h + 4 == yh);
        Ok(if pads {
            center_crop(y, (h, w))?
        } else {
            resize_bilinear(y, (h, w))?
        })
    }

    /// Dissolves `x` (N, C, H, W) in [0, 1] at the fixed timestep `t`.
    pub fn dissolve_at(&self, x: &Tensor, t: usize) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let out_device = x.device().clone();
        let model_device = self.ddpm_device();
        // Resizing and padding are host pixel loops (dia-transforms); each chunk then goes to
        // the DDPM's device for the reverse step and comes back for the resize out.
        let y = self.to_ddpm(&x.to_device(&Device::Cpu)?)?;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = self.cfg.chunk.min(n - start);
            let mut yc = y.narrow(0, start, len)?.to_device(&model_device)?;
            if self.cfg.normalize_input {
                yc = ((yc * 2.0)? - 1.0)?;
            }
            let (mut x0, _) = self.ddpm.x_start(&yc, t)?;
            if self.cfg.normalize_input {
                x0 = ((x0 + 1.0)? * 0.5)?;
            }
            parts.push(x0.to_device(&Device::Cpu)?); // host again, see above
            start += len;
        }
        let y = Tensor::cat(&parts, 0)?;
        Ok(self.back_from_ddpm(&y, (h, w))?.to_device(&out_device)?)
    }

    fn ddpm_device(&self) -> Device {
        self.ddpm.device()
    }
}

impl Dissolve for DiffusionDissolver {
    fn dissolve(&self, x: &Tensor, rng: &mut dyn RngCore) -> dia_transforms::Result<Tensor> {
        let t = self.sample_t(rng);
        self.dissolve_at(x, t)
            .map_err(|e| dia_transforms::Error::Dissolver(Box::new(e)))
    }

    fn name(&self) -> String {
        format!("diffusion@{}", self.image_size)
    }

    /// The epoch-dependent samplers follow the epoch (set at the start of every epoch, as
    /// `simclr_DIA` does).
    fn set_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }
}
