//! The SimCLR augmentation of CSI and DIA (spec §5.3): colour jitter (p = 0.8), random grey
//! (p = 0.2), then the random resized crop, each drawn per sample.
//!
//! Parameters are drawn first ([`SimclrAugmentation::sample`]) and applied deterministically
//! ([`SimclrAugmentation::apply`]), so callers can seed each image separately (evaluation
//! seeds by sample and image index, spec §6) and tests can fix every factor.

use candle_core::Tensor;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::batch::{on_host, ImageBatch};
use crate::color::{check_rgb, grayscale, jitter, ColorJitter, JitterFactors};
use crate::crop::{resized_crop_batch, CropBox, RandomResizedCrop};
use crate::error::{invalid, Result};

/// The random choices of one augmented image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleAugment {
    /// Colour-jitter factors, `None` when this sample is not jittered.
    pub jitter: Option<JitterFactors>,
    /// Whether this sample is turned grey.
    pub gray: bool,
    /// The crop box.
    pub crop: CropBox,
}

/// The random choices for a batch: one jitter order for the batch, one [`SampleAugment`] per
/// image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentParams {
    /// Contrast before HSV (true) or after (false); one coin per batch as in the reference.
    pub contrast_first: bool,
    /// Per-image choices.
    pub samples: Vec<SampleAugment>,
}

/// `simclr_aug = Sequential(ColorJitterLayer, RandomColorGrayLayer, RandomResizedCropLayer)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_transforms::SimclrAugmentation;
/// use rand::SeedableRng;
/// let x = Tensor::full(0.5f32, (2, 3, 8, 8), &Device::Cpu)?;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let y = SimclrAugmentation::train().augment(&x, &mut rng)?;
/// assert_eq!(y.dims(), x.dims());
/// # Ok::<(), dia_transforms::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimclrAugmentation {
    /// Colour jitter.
    pub jitter: ColorJitter,
    /// Probability of greyscale.
    pub gray_p: f32,
    /// Resized crop.
    pub crop: RandomResizedCrop,
}

impl SimclrAugmentation {
    /// Training augmentation: crop scale (0.08, 1) (the reference's `resize_factor` default).
    pub fn train() -> Self {
        Self {
            jitter: ColorJitter::default(),
            gray_p: 0.2,
            crop: RandomResizedCrop::default(),
        }
    }

    /// Evaluation augmentation with `resize_fix`: the crop area fixed at `resize_factor`
    /// (0.54 in the reference's README command), jitter and grey unchanged.
    pub fn eval(resize_factor: f32) -> Self {
        Self {
            crop: RandomResizedCrop {
                scale: (resize_factor, resize_factor),
                ..RandomResizedCrop::default()
            },
            ..Self::train()
        }
    }

    /// Draws the parameters for `n` images of `h`×`w`.
    pub fn sample(&self, n: usize, h: usize, w: usize, rng: &mut dyn RngCore) -> AugmentParams {
        let contrast_first = rng.random::<bool>();
        let jitters: Vec<Option<JitterFactors>> = (0..n).map(|_| self.jitter.sample(rng)).collect();
        let grays: Vec<bool> = (0..n).map(|_| rng.random::<f32>() < self.gray_p).collect();
        let crops = self.crop.sample(n, h, w, rng);
        AugmentParams {
            contrast_first,
            samples: jitters
                .into_iter()
                .zip(grays)
                .zip(crops)
                .map(|((jitter, gray), crop)| SampleAugment { jitter, gray, crop })
                .collect(),
        }
    }

    /// Applies fixed parameters to a batch.
    pub fn apply(&self, x: &Tensor, params: &AugmentParams) -> Result<Tensor> {
        on_host(x, |b| apply_batch(b, params))
    }

    /// Draws parameters from `rng` and applies them.
    pub fn augment(&self, x: &Tensor, rng: &mut dyn RngCore) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let params = self.sample(n, h, w, rng);
        self.apply(x, &params)
    }
}

/// Applies fixed augmentation parameters to a host batch (jitter → grey → crop).
pub fn apply_batch(mut x: ImageBatch, params: &AugmentParams) -> Result<ImageBatch> {
    let (n, c, h, w) = x.dims();
    check_rgb("simclr augmentation", c)?;
    if params.samples.len() != n {
        return Err(invalid(
            "simclr augmentation",
            format!("{} parameter sets for {n} images", params.samples.len()),
        ));
    }
    let hw = h * w;
    x.for_each_image_mut(|i, img| {
        let s = &params.samples[i];
        if let Some(f) = &s.jitter {
            jitter(img, hw, f, params.contrast_first);
        }
        if s.gray {
            grayscale(img, hw);
        }
    });
    let boxes: Vec<CropBox> = params.samples.iter().map(|s| s.crop).collect();
    resized_crop_batch(&x, &boxes)
}
