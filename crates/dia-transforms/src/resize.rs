//! Resizing, padding and cropping, with the exact semantics of PyTorch's `F.interpolate`.
//!
//! DIA moves images between the encoder resolution and the DDPM resolution with
//! `F.interpolate(mode="bilinear", align_corners=False)` and no antialiasing, in both
//! directions (spec §2.3); the `blurnone` baseline with `resize_to_constant` uses `nearest`
//! (spec §3); MedMNIST goes 28 → 32 by zero `Pad(2)` and back by `CenterCrop(28)`.

use candle_core::Tensor;

use crate::batch::{on_host, ImageBatch};
use crate::error::{invalid, Result};

/// One output coordinate of a bilinear resize: the two source indices and their weights.
#[derive(Clone, Copy, Debug)]
struct Tap {
    i0: usize,
    i1: usize,
    l0: f32,
    l1: f32,
}

/// Per-axis taps as PyTorch computes them for `align_corners=False` (`UpSampleKernel.cpp`):
/// `src = max(scale·(dst + 0.5) − 0.5, 0)` with `scale = in/out` in f32.
fn bilinear_taps(input: usize, output: usize) -> Vec<Tap> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|dst| {
            let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            Tap {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

fn check_size(op: &'static str, x: &ImageBatch, size: (usize, usize)) -> Result<()> {
    let (_, _, h, w) = x.dims();
    if size.0 == 0 || size.1 == 0 || h == 0 || w == 0 {
        return Err(invalid(
            op,
            format!("cannot resize {h}x{w} to {}x{}", size.0, size.1),
        ));
    }
    Ok(())
}

/// Bilinear resize to `size` = (H, W), `align_corners=False`, no antialiasing.
pub fn resize_bilinear(x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    on_host(x, |b| resize_bilinear_batch(&b, size))
}

/// [`resize_bilinear`] on a host batch.
pub fn resize_bilinear_batch(x: &ImageBatch, size: (usize, usize)) -> Result<ImageBatch> {
    check_size("resize_bilinear", x, size)?;
    let (_, c, h, w) = x.dims();
    if (h, w) == size {
        return Ok(x.clone());
    }
    let (oh, ow) = size;
    let ty = bilinear_taps(h, oh);
    let tx = bilinear_taps(w, ow);
    Ok(x.map_images(size, |_, src, dst| {
        for ch in 0..c {
            let s = &src[ch * h * w..(ch + 1) * h * w];
            let d = &mut dst[ch * oh * ow..(ch + 1) * oh * ow];
            for (i, a) in ty.iter().enumerate() {
                let (r0, r1) = (&s[a.i0 * w..(a.i0 + 1) * w], &s[a.i1 * w..(a.i1 + 1) * w]);
                for (j, b) in tx.iter().enumerate() {
                    d[i * ow + j] = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1])
                        + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
                }
            }
        }
    }))
}

/// PyTorch's `nearest_idx`: identity for equal sizes, `dst >> 1` for exact ×2, otherwise
/// `min(floor(dst · in/out), in − 1)` in f32.
fn nearest_index(dst: usize, input: usize, output: usize) -> usize {
    if input == output {
        dst
    } else if output == 2 * input {
        dst >> 1
    } else {
        let scale = input as f32 / output as f32;
        ((dst as f32 * scale).floor() as usize).min(input - 1)
    }
}

/// Nearest-neighbour resize to `size` = (H, W) (`F.interpolate(mode="nearest")`).
pub fn resize_nearest(x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    on_host(x, |b| resize_nearest_batch(&b, size))
}

/// [`resize_nearest`] on a host batch.
pub fn resize_nearest_batch(x: &ImageBatch, size: (usize, usize)) -> Result<ImageBatch> {
    check_size("resize_nearest", x, size)?;
    let (_, c, h, w) = x.dims();
    let (oh, ow) = size;
    let rows: Vec<usize> = (0..oh).map(|i| nearest_index(i, h, oh)).collect();
    let cols: Vec<usize> = (0..ow).map(|j| nearest_index(j, w, ow)).collect();
    Ok(x.map_images(size, |_, src, dst| {
        for ch in 0..c {
            for (i, &r) in rows.iter().enumerate() {
                for (j, &q) in cols.iter().enumerate() {
                    dst[(ch * oh + i) * ow + j] = src[(ch * h + r) * w + q];
                }
            }
        }
    }))
}

/// Zero padding by `pad` pixels on every side (torchvision `Pad(pad)`).
pub fn pad_zeros(x: &Tensor, pad: usize) -> Result<Tensor> {
    on_host(x, |b| Ok(pad_zeros_batch(&b, pad)))
}

/// [`pad_zeros`] on a host batch.
pub fn pad_zeros_batch(x: &ImageBatch, pad: usize) -> ImageBatch {
    let (_, c, h, w) = x.dims();
    let (oh, ow) = (h + 2 * pad, w + 2 * pad);
    x.map_images((oh, ow), |_, src, dst| {
        for ch in 0..c {
            for i in 0..h {
                let d0 = (ch * oh + i + pad) * ow + pad;
                dst[d0..d0 + w].copy_from_slice(&src[(ch * h + i) * w..(ch * h + i + 1) * w]);
            }
        }
    })
}

/// Centre crop to `size` (torchvision `CenterCrop`: offsets `round((H − h)/2)`).
pub fn center_crop(x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    on_host(x, |b| center_crop_batch(&b, size))
}

/// [`center_crop`] on a host batch.
pub fn center_crop_batch(x: &ImageBatch, size: (usize, usize)) -> Result<ImageBatch> {
    let (_, c, h, w) = x.dims();
    let (oh, ow) = size;
    if oh > h || ow > w {
        return Err(invalid(
            "center_crop",
            format!("crop {oh}x{ow} is larger than the image {h}x{w}"),
        ));
    }
    // torchvision: int(round((h - oh) / 2.0)), Python rounds halves to even.
    let top = ((h - oh) as f64 / 2.0).round_ties_even() as usize;
    let left = ((w - ow) as f64 / 2.0).round_ties_even() as usize;
    Ok(x.map_images(size, |_, src, dst| {
        for ch in 0..c {
            for i in 0..oh {
                let s0 = (ch * h + top + i) * w + left;
                dst[(ch * oh + i) * ow..(ch * oh + i + 1) * ow].copy_from_slice(&src[s0..s0 + ow]);
            }
        }
    }))
}
