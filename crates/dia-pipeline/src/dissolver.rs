//! The dissolver of a training config (spec §2.3, §3): the one place that turns the config's
//! `shift_trans_type` and `diffusion` section into a [`Dissolve`], loading the DDPM when the
//! kind is `diffusion`. `dia-contrastive` sees only the trait.

use candle_core::Device;
use dia_contrastive::TrainConfig;
use dia_transforms::{BlurDissolver, Dissolve, DissolveKind};

use crate::error::{Error, Result};

/// The dissolver `cfg` asks for, on `device` (the DDPM's), or `None` for plain CSI shifts.
///
/// ```
/// use dia_contrastive::TrainConfig;
/// let yaml = "data: {format: idx, dir: data}\nmode: dia\nshift_trans_type: blurgaussian_rotation\nencoder: {arch: resnet18}\nepochs: 1\nbatch_size: 8\n";
/// let cfg: TrainConfig = serde_yaml::from_str(yaml)?;
/// let d = dia_pipeline::dissolver(&cfg, &candle_core::Device::Cpu)?.expect("a blur");
/// assert_eq!(d.name(), "gaussian7");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dissolver(cfg: &TrainConfig, device: &Device) -> Result<Option<Box<dyn Dissolve>>> {
    Ok(match cfg.shift_trans_type.dissolve {
        DissolveKind::None => None,
        DissolveKind::Gaussian => Some(Box::new(BlurDissolver {
            resize_to_constant: cfg.resize_to_constant,
            ..BlurDissolver::gaussian(cfg.kernel_size)
        })),
        DissolveKind::Median => Some(Box::new(BlurDissolver {
            resize_to_constant: cfg.resize_to_constant,
            ..BlurDissolver::median(cfg.kernel_size)
        })),
        DissolveKind::BlurNone => Some(Box::new(BlurDissolver::none(cfg.resize_to_constant))),
        DissolveKind::Diffusion => {
            let spec = cfg.diffusion.as_ref().ok_or_else(|| {
                Error::Config("shift_trans_type diffusion_* needs a `diffusion` section".into())
            })?;
            let (ddpm, meta) = dia_diffusion::checkpoint::load_any(&spec.checkpoint, device)?;
            Some(Box::new(dia_diffusion::DiffusionDissolver::new(
                ddpm,
                meta.image_size,
                spec.dissolver.clone(),
            )?))
        }
    })
}
