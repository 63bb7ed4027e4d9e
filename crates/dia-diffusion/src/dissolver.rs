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
use dia_transforms::{Dissolve, DissolverConfig, Resolution};
use rand::{Rng, RngCore};
use rand_distr::{Beta, Distribution};

use crate::diffusion::GaussianDiffusion;
use crate::error::{Error, Result};

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
    /// A dissolver with a DDPM trained at `image_size`. The dissolver never changes the DDPM,
    /// so its UNet is frozen ([`crate::Unet::freeze`]): the weights must not change while the
    /// dissolver lives (they cannot if they were loaded or initialised as plain tensors).
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
            ddpm: ddpm.freeze()?,
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
