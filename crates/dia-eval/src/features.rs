//! Features with test-time augmentation (spec §6): for every image and shift k, the average
//! over `ood_samples` augmented copies of the `simclr` projection and the `shift` logits.
//!
//! Copy s of image x under shift k is `simclr_aug(shift_k(hflip(x)))` with the crop area fixed
//! at `resize_factor` (`resize_fix`), in evaluation mode (BN running statistics). Every random
//! choice of copy s of image i comes from a generator seeded by (seed, s, i), and the one
//! per-batch coin of the colour jitter (its order) from (seed, s, k), so a feature does not
//! depend on which other images share its batch: scores are the same for any batch size.

use candle_core::Tensor;
use dia_data::{load_batch, Dataset};
use dia_encoder::ResNet18;
use dia_transforms::{hflip, AugmentParams, Shift, SimclrAugmentation};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::csi::ShiftFeatures;
use crate::error::{Error, Result};

fn d_samples() -> usize {
    10
}
fn d_factor() -> f32 {
    0.54
}
fn d_true() -> bool {
    true
}
fn d_batch() -> usize {
    100
}

/// Test-time augmentation settings (the reference's `--ood_samples 10 --resize_factor 0.54
/// --resize_fix`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtaConfig {
    /// Augmented copies per image and shift.
    #[serde(default = "d_samples")]
    pub ood_samples: usize,
    /// Crop area of the evaluation augmentation.
    #[serde(default = "d_factor")]
    pub resize_factor: f32,
    /// Fix the crop area at `resize_factor` (else the training range up to it).
    #[serde(default = "d_true")]
    pub resize_fix: bool,
    /// Random horizontal flip before the shift.
    #[serde(default = "d_true")]
    pub hflip: bool,
    /// Images per forward pass (does not change the features).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Seed of the augmentations.
    #[serde(default)]
    pub seed: u64,
}

impl Default for TtaConfig {
    fn default() -> Self {
        Self {
            ood_samples: 10,
            resize_factor: 0.54,
            resize_fix: true,
            hflip: true,
            batch_size: 100,
            seed: 0,
        }
    }
}

impl TtaConfig {
    fn augmentation(&self) -> SimclrAugmentation {
        let mut aug = SimclrAugmentation::eval(self.resize_factor);
        if !self.resize_fix {
            // CSI: `resize_scale = (resize_factor, 1.0)` unless `resize_fix`.
            aug.crop.scale = (self.resize_factor, 1.0);
        }
        aug
    }
}

/// Images per encoder call. Every call gets exactly this many (the last one zero-padded; BN
/// uses running statistics, so images do not interact): gemm kernels pick their blocking by
/// matrix size, so a different count could round an image's features differently.
pub const FORWARD_GROUP: usize = 16;

/// The encoder's `simclr` and `shift` outputs for `x`, in groups of [`FORWARD_GROUP`].
fn forward_fixed(model: &ResNet18, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    let (mut z, mut l) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(FORWARD_GROUP) {
        let len = FORWARD_GROUP.min(n - start);
        // Augmented on the host; moved to the encoder's device here, once per group.
        let mut part = x.narrow(0, start, len)?.to_device(model.device())?;
        if len < FORWARD_GROUP {
            let (_, c, h, w) = part.dims4()?;
            let pad = Tensor::zeros((FORWARD_GROUP - len, c, h, w), part.dtype(), part.device())?;
            part = Tensor::cat(&[&part, &pad], 0)?;
        }
        let out = model.forward_t(&part, false)?;
        // Detached: the encoder's weights are trainable variables, so its outputs carry the
        // autograd graph (every activation of the pass); keeping them in the running sums would
        // keep every pass of the whole dataset alive.
        z.push(out.simclr.narrow(0, 0, len)?.detach());
        l.push(out.shift.narrow(0, 0, len)?.detach());
    }
    Ok((Tensor::cat(&z, 0)?, Tensor::cat(&l, 0)?))
}

fn image_rng(seed: u64, s: usize, i: usize) -> rand_chacha::ChaCha8Rng {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7E57_7A6A);
    // One stream per (copy, image): word position selects it without mixing collisions.
    rng.set_stream(((s as u64) << 40) ^ i as u64);
    rng
}

/// TTA features of `indices` of `data` under `shift` with `k_shift` shifts: one
/// [`ShiftFeatures`] per k. `progress(done, total)` counts images.
pub fn extract_features(
    model: &ResNet18,
    data: &dyn Dataset,
    indices: &[usize],
    shift: Shift,
    k_shift: usize,
    cfg: &TtaConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ShiftFeatures>> {
    if cfg.ood_samples == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid(
            "ood_samples and batch_size must be positive".into(),
        ));
    }
    if indices.is_empty() {
        return Err(Error::Invalid("no image to extract features from".into()));
    }
    let aug = cfg.augmentation();
    let mut simclr: Vec<Vec<Tensor>> = vec![Vec::new(); k_shift];
    let mut logits: Vec<Vec<Tensor>> = vec![Vec::new(); k_shift];
    let mut done = 0;
    for chunk in indices.chunks(cfg.batch_size) {
        let x = load_batch(data, chunk.to_vec())?.images;
        let (n, _, h, w) = x.dims4()?;
        let mut sum_z: Vec<Option<Tensor>> = vec![None; k_shift];
        let mut sum_l: Vec<Option<Tensor>> = vec![None; k_shift];
        for s in 0..cfg.ood_samples {
            let mut rngs: Vec<_> = chunk.iter().map(|&i| image_rng(cfg.seed, s, i)).collect();
            for k in 0..k_shift {
                let mask: Vec<bool> = rngs
                    .iter_mut()
                    .map(|r| cfg.hflip && r.random::<bool>())
                    .collect();
                let xk = shift.apply(&hflip(&x, &mask)?, k)?;
                let mut coin = image_rng(cfg.seed ^ 0xC0FF_EE00, s, k);
                let contrast_first = coin.random::<bool>();
                let samples = rngs
                    .iter_mut()
                    .map(|r| aug.sample(1, h, w, r).samples[0])
                    .collect();
                let params = AugmentParams {
                    contrast_first,
                    samples,
                };
                let (z, l) = forward_fixed(model, &aug.apply(&xk, &params)?)?;
                let add = |acc: &mut Option<Tensor>, t: Tensor| -> Result<()> {
                    *acc = Some(match acc.take() {
                        Some(a) => (a + t)?,
                        None => t,
                    });
                    Ok(())
                };
                add(&mut sum_z[k], z)?;
                add(&mut sum_l[k], l)?;
            }
        }
        let inv = 1.0 / cfg.ood_samples as f64;
        for k in 0..k_shift {
            simclr[k].push((sum_z[k].take().expect("ood_samples > 0") * inv)?);
            logits[k].push((sum_l[k].take().expect("ood_samples > 0") * inv)?);
        }
        done += n;
        progress(done, indices.len());
    }
    (0..k_shift)
        .map(|k| {
            Ok(ShiftFeatures {
                simclr: Tensor::cat(&simclr[k], 0)?,
                shift: Tensor::cat(&logits[k], 0)?,
            })
        })
        .collect()
}
