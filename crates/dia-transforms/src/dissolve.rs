//! The [`Dissolve`] trait (DIA's dissolving transformation, spec §2.3) and the blur dissolvers
//! of the baselines (spec §3).
//!
//! A dissolver maps a batch of clean images in [0, 1] to a batch of the same shape with the
//! fine detail removed. `dia-contrastive` takes any `&dyn Dissolve`; the diffusion dissolver
//! lives in `dia-diffusion`.

use candle_core::Tensor;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::batch::{on_host, ImageBatch};
use crate::blur::{gaussian_blur_batch, median_blur_batch};
use crate::error::{invalid, Result};
use crate::resize::resize_nearest_batch;

/// A dissolving transformation: batch (N, 3, H, W) in, batch of the same shape out.
///
/// `rng` supplies whatever randomness the dissolver needs (the diffusion dissolver draws one
/// timestep per call); deterministic dissolvers ignore it.
pub trait Dissolve: Send + Sync {
    /// Dissolves a batch.
    fn dissolve(&self, x: &Tensor, rng: &mut dyn RngCore) -> Result<Tensor>;

    /// A short name for logs and reports.
    fn name(&self) -> String;

    /// Tells the dissolver which epoch starts (1-based), for epoch-dependent timestep samplers;
    /// the default ignores it.
    fn set_epoch(&self, _epoch: usize) {}
}

/// The filter of a [`BlurDissolver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlurFilter {
    /// Gaussian blur with the OpenCV kernel of size k.
    Gaussian {
        /// Kernel size (odd); 7 in the reference.
        kernel_size: usize,
    },
    /// Median blur with a k×k window.
    Median {
        /// Kernel size (odd); 7 in the reference.
        kernel_size: usize,
    },
    /// No filter (`blurnone`).
    None,
}

/// The reference's `TL.Blur` without its shift: an optional nearest resize to a constant
/// resolution (`resize_to_constant`), the filter, and the nearest resize back.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_transforms::{BlurDissolver, Dissolve};
/// use rand::SeedableRng;
/// let x = Tensor::full(0.5f32, (1, 3, 16, 16), &Device::Cpu)?;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let y = BlurDissolver::gaussian(7).dissolve(&x, &mut rng)?;
/// assert_eq!(y.dims(), [1, 3, 16, 16]);
/// # Ok::<(), dia_transforms::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlurDissolver {
    /// The filter.
    pub filter: BlurFilter,
    /// Resize (nearest) to this square resolution before filtering and back after.
    pub resize_to_constant: Option<usize>,
}

impl BlurDissolver {
    /// Gaussian blur at full resolution.
    pub fn gaussian(kernel_size: usize) -> Self {
        Self {
            filter: BlurFilter::Gaussian { kernel_size },
            resize_to_constant: None,
        }
    }

    /// Median blur at full resolution.
    pub fn median(kernel_size: usize) -> Self {
        Self {
            filter: BlurFilter::Median { kernel_size },
            resize_to_constant: None,
        }
    }

    /// `blurnone`: only the nearest round trip to `resolution` (identity when `None`).
    pub fn none(resolution: Option<usize>) -> Self {
        Self {
            filter: BlurFilter::None,
            resize_to_constant: resolution,
        }
    }

    /// [`Dissolve::dissolve`] on a host batch.
    pub fn dissolve_batch(&self, x: &ImageBatch) -> Result<ImageBatch> {
        let (_, _, h, w) = x.dims();
        let small = match self.resize_to_constant {
            Some(0) => return Err(invalid("blur dissolver", "resize_to_constant must be > 0")),
            Some(r) => resize_nearest_batch(x, (r, r))?,
            None => x.clone(),
        };
        let filtered = match self.filter {
            BlurFilter::Gaussian { kernel_size } => gaussian_blur_batch(&small, kernel_size)?,
            BlurFilter::Median { kernel_size } => median_blur_batch(&small, kernel_size)?,
            BlurFilter::None => small,
        };
        match self.resize_to_constant {
            Some(_) => resize_nearest_batch(&filtered, (h, w)),
            None => Ok(filtered),
        }
    }
}

impl Dissolve for BlurDissolver {
    fn dissolve(&self, x: &Tensor, _rng: &mut dyn RngCore) -> Result<Tensor> {
        on_host(x, |b| self.dissolve_batch(&b))
    }

    fn name(&self) -> String {
        let base = match self.filter {
            BlurFilter::Gaussian { kernel_size } => format!("gaussian{kernel_size}"),
            BlurFilter::Median { kernel_size } => format!("median{kernel_size}"),
            BlurFilter::None => "blurnone".to_string(),
        };
        match self.resize_to_constant {
            Some(r) => format!("{base}@{r}"),
            None => base,
        }
    }
}
