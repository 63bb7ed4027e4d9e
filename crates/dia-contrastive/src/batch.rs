//! Batch construction for one CSI / DIA step (spec §5.2).
//!
//! For a batch x of B images and K shifts:
//! - `v1, v2`: two independently h-flipped copies of x;
//! - `V1 = cat_k shift_k(v1)`, `V2 = cat_k shift_k(v2)`;
//! - DIA only: `V3 = cat_k shift_k(D(hflip(x)))`, with a new flip and a new dissolver call — so
//!   a new timestep — for every k; dissolved images keep the shift label k;
//! - labels `[0]*B, …, [K−1]*B`, repeated for each group;
//! - the SimCLR augmentation over the whole `2·K·B` (CSI) or `3·K·B` (DIA) batch.
//!
//! The reference's blur baselines blur all three groups (its `Blur` layer ignores the
//! `diffusion=False` flag, spec §10.7); `blur_all_views` reproduces that, the default does not.

use candle_core::Tensor;
use dia_transforms::{random_hflip, Dissolve, Shift, SimclrAugmentation};
use rand::RngCore;

use crate::error::Result;

/// What goes into one batch.
pub struct BatchBuilder<'a> {
    /// The shift (rotation or cut-permutation).
    pub shift: Shift,
    /// Number of shifts (4).
    pub k_shift: usize,
    /// The dissolver of DIA; `None` for CSI.
    pub dissolver: Option<&'a dyn Dissolve>,
    /// Apply the dissolver to the two clean groups too (the reference's blur behaviour).
    pub blur_all_views: bool,
    /// The SimCLR augmentation.
    pub augmentation: SimclrAugmentation,
}

/// A built batch: images (G·K·B, 3, H, W), shift labels, and the group count G (2 or 3).
#[derive(Debug)]
pub struct ContrastiveBatch {
    /// Augmented images: group-major, then shift-major.
    pub images: Tensor,
    /// Shift label of every image.
    pub shift_labels: Vec<u32>,
    /// Number of view groups: 2 for CSI, 3 for DIA.
    pub groups: usize,
}

impl<'a> BatchBuilder<'a> {
    /// The training batch of `dia train` for `shift`: K = 4 shifts, the SimCLR training
    /// augmentation, and `dissolver` (DIA) on the third group only.
    pub fn new(shift: Shift, dissolver: Option<&'a dyn Dissolve>) -> Self {
        Self {
            shift,
            k_shift: dia_transforms::K_SHIFT,
            dissolver,
            blur_all_views: false,
            augmentation: SimclrAugmentation::train(),
        }
    }

    /// Builds the batch for `x` (B, 3, H, W) in [0, 1].
    pub fn build(&self, x: &Tensor, rng: &mut dyn RngCore) -> Result<ContrastiveBatch> {
        let b = x.dim(0)?;
        let shifted = |v: &Tensor| -> Result<Vec<Tensor>> {
            (0..self.k_shift)
                .map(|k| Ok(self.shift.apply(v, k)?))
                .collect()
        };
        let maybe_dissolve = |v: Tensor, rng: &mut dyn RngCore| -> Result<Tensor> {
            match (self.dissolver, self.blur_all_views) {
                (Some(d), true) => Ok(d.dissolve(&v, rng)?),
                _ => Ok(v),
            }
        };
        let flipped = random_hflip(&Tensor::cat(&[x, x], 0)?, rng)?;
        let v1 = maybe_dissolve(flipped.narrow(0, 0, b)?, rng)?;
        let v2 = maybe_dissolve(flipped.narrow(0, b, b)?, rng)?;
        let mut parts = shifted(&v1)?;
        parts.extend(shifted(&v2)?);
        let mut groups = 2;
        if let Some(d) = self.dissolver {
            for k in 0..self.k_shift {
                let view = random_hflip(x, rng)?;
                let dissolved = d.dissolve(&view, rng)?;
                parts.push(self.shift.apply(&dissolved, k)?);
            }
            groups = 3;
        }
        let images = self.augmentation.augment(&Tensor::cat(&parts, 0)?, rng)?;
        let one_group = dia_transforms::shift_labels(self.k_shift, b);
        let shift_labels = (0..groups)
            .flat_map(|_| one_group.iter().copied())
            .collect();
        Ok(ContrastiveBatch {
            images,
            shift_labels,
            groups,
        })
    }
}
