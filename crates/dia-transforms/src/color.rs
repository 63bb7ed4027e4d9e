//! Colour operations of the SimCLR augmentation (spec §5.3): the reference's colour jitter
//! (contrast and HSV, not torchvision's) and random greyscale.
//!
//! All arithmetic is f32 in the order of the reference, so results agree with PyTorch to
//! rounding. Every operation works on one CHW image with three channels.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// Per-sample factors of one colour-jitter draw.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JitterFactors {
    /// Contrast factor, U(0.6, 1.4) by default.
    pub contrast: f32,
    /// Hue shift, U(−0.1, 0.1) by default (applied as `f_h · 255/360`, as in the reference).
    pub hue: f32,
    /// Saturation factor, U(0.6, 1.4) by default.
    pub saturation: f32,
    /// Value (brightness) factor, U(0.6, 1.4) by default.
    pub value: f32,
}

/// The reference's `ColorJitterLayer(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
/// p=0.8)`: with probability `p` per sample, contrast and HSV jitter in an order drawn once per
/// batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Brightness strength b: value factor ~ U(1 − b, 1 + b).
    pub brightness: f32,
    /// Contrast strength: factor ~ U(1 − c, 1 + c).
    pub contrast: f32,
    /// Saturation strength: factor ~ U(1 − s, 1 + s).
    pub saturation: f32,
    /// Hue strength: shift ~ U(−h, h).
    pub hue: f32,
    /// Probability that a sample is jittered.
    pub p: f32,
}

impl Default for ColorJitter {
    fn default() -> Self {
        Self {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            p: 0.8,
        }
    }
}

impl ColorJitter {
    /// Draws the factors of one sample, or `None` when the sample is left unchanged.
    pub fn sample(&self, rng: &mut dyn RngCore) -> Option<JitterFactors> {
        // Draw the factors first so the stream does not depend on the outcome of the coin.
        let f = JitterFactors {
            contrast: uniform(rng, 1.0 - self.contrast, 1.0 + self.contrast),
            hue: uniform(rng, -self.hue, self.hue),
            saturation: uniform(rng, 1.0 - self.saturation, 1.0 + self.saturation),
            value: uniform(rng, 1.0 - self.brightness, 1.0 + self.brightness),
        };
        (rng.random::<f32>() < self.p).then_some(f)
    }
}

pub(crate) fn uniform(rng: &mut dyn RngCore, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

pub(crate) fn check_rgb(op: &'static str, c: usize) -> Result<()> {
    if c != 3 {
        return Err(invalid(op, format!("needs 3 channels, got {c}")));
    }
    Ok(())
}

/// Contrast: `x = clamp((x − mean_HW(x)) · f + mean_HW(x), 0, 1)`, with the per-channel
/// spatial mean (not the grey level).
pub fn adjust_contrast(img: &mut [f32], hw: usize, factor: f32) {
    for plane in img.chunks_mut(hw) {
        let mean = (plane.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32;
        for v in plane.iter_mut() {
            *v = ((*v - mean) * factor + mean).clamp(0.0, 1.0);
        }
    }
}

/// Python's `%` on f32 as PyTorch computes it: `fmod`, moved into the sign of the divisor.
fn py_mod(a: f32, b: f32) -> f32 {
    let m = a % b;
    if m != 0.0 && ((m < 0.0) != (b < 0.0)) {
        m + b
    } else {
        m
    }
}

/// RGB → HSV of the reference: `hue = atan2(√3(g − b), 2r − g − b) mod 2π / 2π`,
/// `sat = (max − min)/max`, `val = max`; non-finite values become 0.
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let hue = py_mod(
        (3f64.sqrt() as f32 * (g - b)).atan2(2.0 * r - g - b),
        two_pi,
    ) / two_pi;
    let sat = (max - min) / max;
    let fin = |v: f32| if v.is_finite() { v } else { 0.0 };
    (fin(hue), fin(sat), fin(max))
}

/// HSV → RGB of the reference: channel n ∈ (5, 3, 1) is `v − v·s·clamp(min(k, 4 − k), 0, 1)`
/// with `k = (n + 6h) mod 6`.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let c = v * s;
    let ch = |n: f32| {
        let k = py_mod(n + h * 6.0, 6.0);
        v - c * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    (ch(5.0), ch(3.0), ch(1.0))
}

/// HSV jitter of one RGB image (CHW): hue shifted by `f_h·255/360` modulo 1, saturation and
/// value scaled, all three clamped to [0, 1], then back to RGB.
pub fn adjust_hsv(img: &mut [f32], hw: usize, f: &JitterFactors) {
    let hue_shift = f.hue * 255.0 / 360.0;
    let (r, rest) = img.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        let h = py_mod(h + hue_shift, 1.0).clamp(0.0, 1.0);
        let s = (s * f.saturation).clamp(0.0, 1.0);
        let v = (v * f.value).clamp(0.0, 1.0);
        (*r, *g, *b) = hsv_to_rgb(h, s, v);
    }
}

/// Jitter of one RGB image with fixed factors: contrast then HSV, or HSV then contrast.
pub fn jitter(img: &mut [f32], hw: usize, f: &JitterFactors, contrast_first: bool) {
    if contrast_first {
        adjust_contrast(img, hw, f.contrast);
        adjust_hsv(img, hw, f);
    } else {
        adjust_hsv(img, hw, f);
        adjust_contrast(img, hw, f.contrast);
    }
}

/// Greyscale of one RGB image: `0.299 R + 0.587 G + 0.114 B` written to all three channels.
pub fn grayscale(img: &mut [f32], hw: usize) {
    let (r, rest) = img.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let l = 0.299 * *r + 0.587 * *g + 0.114 * *b;
        (*r, *g, *b) = (l, l, l);
    }
}
