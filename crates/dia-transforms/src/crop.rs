//! The reference's random resized crop (spec §5.3, §13.4) and horizontal flip.
//!
//! The crop is an Inception crop done with `affine_grid` + `grid_sample` (bilinear, reflection
//! padding, `align_corners=False`): the output keeps the input size and samples the crop box
//! through the affine map `θ = [[w/W, 0, w_bias], [0, h/H, h_bias]]`.

use candle_core::Tensor;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::batch::{on_host, ImageBatch};
use crate::color::uniform;
use crate::error::{invalid, Result};

/// A crop box in pixels: width `w`, height `h`, and the offsets drawn by the reference as
/// `randint(w − W, W − w + 1)` (the box centre moves by half of `w_off` pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// Crop width in pixels, 1..=W.
    pub w: i64,
    /// Crop height in pixels, 1..=H.
    pub h: i64,
    /// Horizontal offset, in `w − W ..= W − w`.
    pub w_off: i64,
    /// Vertical offset, in `h − H ..= H − h`.
    pub h_off: i64,
}

impl CropBox {
    /// The whole image (the identity crop).
    pub fn full(h: usize, w: usize) -> Self {
        Self {
            w: w as i64,
            h: h as i64,
            w_off: 0,
            h_off: 0,
        }
    }

    /// The affine parameters (θ00, θ11, θ02, θ12) for an image of `h`×`w`, computed in f64
    /// and rounded to f32 as the reference's float64 `whbias` assigned to a float32 θ.
    pub fn theta(&self, h: usize, w: usize) -> [f32; 4] {
        let (hf, wf) = (h as f64, w as f64);
        [
            (self.w as f64 / wf) as f32,
            (self.h as f64 / hf) as f32,
            (self.w_off as f64 / wf) as f32,
            (self.h_off as f64 / hf) as f32,
        ]
    }
}

/// Inception-style crop parameters: area fraction ~ U(scale), log aspect ~ U(log ratio).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomResizedCrop {
    /// Range of the crop area as a fraction of the image: (0.08, 1) in training, (0.54, 0.54)
    /// in evaluation with `resize_fix`.
    pub scale: (f32, f32),
    /// Range of the aspect ratio w/h.
    pub ratio: (f32, f32),
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl RandomResizedCrop {
    /// Draws `n` crop boxes for `h`×`w` images as the reference does: `10·n` candidates,
    /// `w = round(√(A·r))`, `h = round(√(A/r))` (halves to even), the first `n` that fit, the
    /// whole image for any shortfall, then the offsets.
    pub fn sample(&self, n: usize, h: usize, w: usize, rng: &mut dyn RngCore) -> Vec<CropBox> {
        let area = (h * w) as f64;
        let (lr0, lr1) = ((self.ratio.0 as f64).ln(), (self.ratio.1 as f64).ln());
        let mut boxes: Vec<CropBox> = Vec::with_capacity(n);
        let candidates: Vec<(f64, f64)> = (0..10 * n)
            .map(|_| {
                let target = uniform(rng, self.scale.0, self.scale.1) as f64 * area;
                (target, uniform(rng, lr0 as f32, lr1 as f32) as f64)
            })
            .collect();
        for (target, log_r) in candidates {
            if boxes.len() == n {
                break;
            }
            let r = log_r.exp();
            let bw = (target * r).sqrt().round_ties_even() as i64;
            let bh = (target / r).sqrt().round_ties_even() as i64;
            if bw > 0 && bw <= w as i64 && bh > 0 && bh <= h as i64 {
                boxes.push(CropBox {
                    w: bw,
                    h: bh,
                    w_off: 0,
                    h_off: 0,
                });
            }
        }
        boxes.resize(n, CropBox::full(h, w));
        for b in &mut boxes {
            b.w_off = rng.random_range(b.w - w as i64..=w as i64 - b.w);
            b.h_off = rng.random_range(b.h - h as i64..=h as i64 - b.h);
        }
        boxes
    }
}

/// The source coordinate of `grid_sample` with reflection padding and `align_corners=False`:
/// unnormalise, reflect about −0.5 and size − 0.5, clamp to [0, size − 1].
fn reflect_source(coord: f32, size: usize) -> f32 {
    let s = size as f32;
    let u = ((coord + 1.0) * s - 1.0) / 2.0;
    // PyTorch `reflect_coordinates(u, -1, 2·size − 1)`.
    let (min, span) = (-0.5f32, s);
    let d = (u - min).abs();
    let extra = d % span;
    let flips = (d / span).floor() as i64;
    let r = if flips % 2 == 0 {
        extra + min
    } else {
        span - extra + min
    };
    r.clamp(0.0, s - 1.0)
}

/// Crops every image of the batch with its box and resamples it to the input size
/// (bilinear, reflection padding, `align_corners=False`).
pub fn resized_crop(x: &Tensor, boxes: &[CropBox]) -> Result<Tensor> {
    on_host(x, |b| resized_crop_batch(&b, boxes))
}

/// [`resized_crop`] on a host batch.
pub fn resized_crop_batch(x: &ImageBatch, boxes: &[CropBox]) -> Result<ImageBatch> {
    let (n, c, h, w) = x.dims();
    if boxes.len() != n {
        return Err(invalid(
            "resized_crop",
            format!("{} crop boxes for {n} images", boxes.len()),
        ));
    }
    Ok(x.map_images((h, w), |i, src, dst| {
        let [sx, sy, tx, ty] = boxes[i].theta(h, w);
        // Per-axis source positions: the map is separable because θ is diagonal.
        let cols: Vec<f32> = (0..w)
            .map(|j| reflect_source(sx * ((2 * j + 1) as f32 / w as f32 - 1.0) + tx, w))
            .collect();
        let rows: Vec<f32> = (0..h)
            .map(|i| reflect_source(sy * ((2 * i + 1) as f32 / h as f32 - 1.0) + ty, h))
            .collect();
        for ch in 0..c {
            let s = &src[ch * h * w..(ch + 1) * h * w];
            let at = |y: i64, x: i64| -> f32 {
                if y >= 0 && y < h as i64 && x >= 0 && x < w as i64 {
                    s[y as usize * w + x as usize]
                } else {
                    0.0
                }
            };
            for (i, &iy) in rows.iter().enumerate() {
                let y0 = iy.floor();
                let (fy, y0i) = (iy - y0, y0 as i64);
                for (j, &ix) in cols.iter().enumerate() {
                    let x0 = ix.floor();
                    let (fx, x0i) = (ix - x0, x0 as i64);
                    let v = at(y0i, x0i) * (1.0 - fx) * (1.0 - fy)
                        + at(y0i, x0i + 1) * fx * (1.0 - fy)
                        + at(y0i + 1, x0i) * (1.0 - fx) * fy
                        + at(y0i + 1, x0i + 1) * fx * fy;
                    dst[(ch * h + i) * w + j] = v;
                }
            }
        }
    }))
}

/// Flips the images whose entry in `mask` is true, left to right (the reference's
/// `HorizontalFlipLayer` samples with an exact mirror grid, spec §13.4).
pub fn hflip(x: &Tensor, mask: &[bool]) -> Result<Tensor> {
    on_host(x, |b| hflip_batch(&b, mask))
}

/// [`hflip`] on a host batch.
pub fn hflip_batch(x: &ImageBatch, mask: &[bool]) -> Result<ImageBatch> {
    let (n, _, h, w) = x.dims();
    if mask.len() != n {
        return Err(invalid(
            "hflip",
            format!("{} flags for {n} images", mask.len()),
        ));
    }
    Ok(x.map_images((h, w), |i, src, dst| {
        for (d, s) in dst.chunks_mut(w).zip(src.chunks(w)) {
            d.copy_from_slice(s);
            if mask[i] {
                d.reverse();
            }
        }
    }))
}

/// Flips each image independently with probability 1/2.
pub fn random_hflip(x: &Tensor, rng: &mut dyn RngCore) -> Result<Tensor> {
    let n = x.dim(0)?;
    let mask: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
    hflip(x, &mask)
}
