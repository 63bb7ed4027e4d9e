//! The shift transformations of CSI and DIA (spec §4): rotation by k·90° and cut-permutation.
//!
//! A shift turns one image into K = 4 "shifted" copies whose index k is the label of the
//! shift-classification head. Both shifts are exact pixel permutations.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::{on_host, ImageBatch};
use crate::error::{invalid, Result};

/// Number of shift classes of every shift type of the reference (`K_shift = 4`).
pub const K_SHIFT: usize = 4;

/// A shift transformation with [`K_SHIFT`] classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shift {
    /// `torch.rot90(x, k, dims=(2, 3))`: k quarter turns, counter-clockwise as displayed.
    Rotation,
    /// Swap image halves: k = 1 left/right, 2 top/bottom, 3 both (spec §4).
    #[serde(rename = "cutperm")]
    CutPerm,
}

impl Shift {
    /// Applies shift `k` (0..4) to a batch.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use dia_transforms::Shift;
    /// let x = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((1, 1, 2, 3))?;
    /// // One quarter turn of [[0 1 2] [3 4 5]] is [[2 5] [1 4] [0 3]].
    /// let y = Shift::Rotation.apply(&x, 1)?;
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [2., 5., 1., 4., 0., 3.]);
    /// # Ok::<(), dia_transforms::Error>(())
    /// ```
    pub fn apply(&self, x: &Tensor, k: usize) -> Result<Tensor> {
        on_host(x, |b| self.apply_batch(&b, k))
    }

    /// [`Shift::apply`] on a host batch.
    pub fn apply_batch(&self, x: &ImageBatch, k: usize) -> Result<ImageBatch> {
        if k >= K_SHIFT {
            return Err(invalid("shift", format!("shift index {k} is not in 0..4")));
        }
        Ok(match self {
            Shift::Rotation => rot90(x, k),
            Shift::CutPerm => cutperm(x, k),
        })
    }

    /// The name used in configs and by the reference (`rotation`, `cutperm`).
    pub fn name(&self) -> &'static str {
        match self {
            Shift::Rotation => "rotation",
            Shift::CutPerm => "cutperm",
        }
    }
}

/// `torch.rot90(x, k, dims=(2, 3))`. An H×W image becomes W×H for odd k.
///
/// In flip/transpose terms (spec §4): k = 1 is `x.flip(W).transpose(H, W)`, k = 2 flips both
/// axes, k = 3 is `x.transpose(H, W).flip(W)`.
pub fn rot90(x: &ImageBatch, k: usize) -> ImageBatch {
    let (_, c, h, w) = x.dims();
    let k = k % 4;
    let out_hw = if k % 2 == 1 { (w, h) } else { (h, w) };
    let (oh, ow) = out_hw;
    x.map_images(out_hw, |_, src, dst| {
        for ch in 0..c {
            let s = &src[ch * h * w..(ch + 1) * h * w];
            let d = &mut dst[ch * oh * ow..(ch + 1) * oh * ow];
            for i in 0..oh {
                for j in 0..ow {
                    // Source pixel (row, column) that lands at output (i, j).
                    let (r, q) = match k {
                        0 => (i, j),
                        1 => (j, w - 1 - i),
                        2 => (h - 1 - i, w - 1 - j),
                        _ => (h - 1 - j, i),
                    };
                    d[i * ow + j] = s[r * w + q];
                }
            }
        }
    })
}

/// Cut-permutation `k` (spec §4): with `h_mid = H/2`, `w_mid = W/2` (rounded down), swap the
/// row halves when `k / 2 == 1`, then the column halves when `k % 2 == 1`.
pub fn cutperm(x: &ImageBatch, k: usize) -> ImageBatch {
    let (_, c, h, w) = x.dims();
    let swap_rows = (k / 2) % 2 == 1;
    let swap_cols = k % 2 == 1;
    let (h_mid, w_mid) = (h / 2, w / 2);
    x.map_images((h, w), |_, src, dst| {
        for ch in 0..c {
            for i in 0..h {
                // `cat(x[h_mid:], x[:h_mid])` puts source row (i + h_mid) mod H at row i.
                let r = if swap_rows { (i + h_mid) % h } else { i };
                for j in 0..w {
                    let q = if swap_cols { (j + w_mid) % w } else { j };
                    dst[(ch * h + i) * w + j] = src[(ch * h + r) * w + q];
                }
            }
        }
    })
}

/// Shift labels of a batch built as `cat_k shift_k(x)`: `[0; b], [1; b], ..., [k_shift-1; b]`.
///
/// ```
/// assert_eq!(dia_transforms::shift_labels(4, 2), [0, 0, 1, 1, 2, 2, 3, 3]);
/// ```
pub fn shift_labels(k_shift: usize, batch: usize) -> Vec<u32> {
    (0..k_shift as u32)
        .flat_map(|k| std::iter::repeat_n(k, batch))
        .collect()
}
