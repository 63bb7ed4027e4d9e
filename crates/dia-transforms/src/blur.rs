//! The blur baselines of DIA (spec §3): Gaussian and median filters with zero padding.
//!
//! The reference builds its Gaussian kernel with `cv2.getGaussianKernel(k, sigma=0)`. For odd
//! k ≤ 7 and σ ≤ 0 OpenCV does not compute a Gaussian at all: it returns a fixed table, for
//! k = 7 `[2, 7, 14, 18, 14, 7, 2] / 64` (not a σ = 1.4 Gaussian). Larger kernels use
//! σ = 0.3·((k − 1)/2 − 1) + 0.8. The 2-D kernel is the outer product, applied per channel
//! with zero padding k/2. The median filter (kornia 0.6.8 `MedianBlur`) takes the middle of
//! the k² zero-padded neighbours.

use candle_core::Tensor;

use crate::batch::{on_host, ImageBatch};
use crate::error::{invalid, Result};

/// OpenCV's fixed small-kernel table (`getGaussianKernel`, σ ≤ 0, odd k ≤ 7).
const SMALL_GAUSSIAN: [&[f32]; 4] = [
    &[1.0],
    &[0.25, 0.5, 0.25],
    &[0.0625, 0.25, 0.375, 0.25, 0.0625],
    &[
        0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
    ],
];

fn check_kernel(op: &'static str, k: usize) -> Result<()> {
    if k == 0 || k.is_multiple_of(2) {
        return Err(invalid(
            op,
            format!("kernel size must be odd and positive, got {k}"),
        ));
    }
    Ok(())
}

/// The 1-D kernel of `cv2.getGaussianKernel(k, sigma=0)`.
///
/// ```
/// let g = dia_transforms::gaussian_kernel_1d(7)?;
/// assert_eq!(g, [2., 7., 14., 18., 14., 7., 2.].map(|v: f32| v / 64.));
/// # Ok::<(), dia_transforms::Error>(())
/// ```
pub fn gaussian_kernel_1d(k: usize) -> Result<Vec<f32>> {
    check_kernel("gaussian_kernel_1d", k)?;
    if k <= 7 {
        return Ok(SMALL_GAUSSIAN[k / 2].to_vec());
    }
    let sigma = 0.3 * ((k as f64 - 1.0) * 0.5 - 1.0) + 0.8;
    let scale = -0.5 / (sigma * sigma);
    let raw: Vec<f64> = (0..k)
        .map(|i| {
            let x = i as f64 - (k as f64 - 1.0) * 0.5;
            (scale * x * x).exp()
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    Ok(raw.iter().map(|v| (v / sum) as f32).collect())
}

/// Gaussian blur with the k×k kernel `g gᵀ` of [`gaussian_kernel_1d`], per channel, zero
/// padding k/2 (the reference's `conv2d(..., groups=C, padding=k//2)`).
pub fn gaussian_blur(x: &Tensor, k: usize) -> Result<Tensor> {
    on_host(x, |b| gaussian_blur_batch(&b, k))
}

/// [`gaussian_blur`] on a host batch.
pub fn gaussian_blur_batch(x: &ImageBatch, k: usize) -> Result<ImageBatch> {
    let g = gaussian_kernel_1d(k)?;
    let kernel: Vec<f32> = g
        .iter()
        .flat_map(|a| g.iter().map(move |b| a * b))
        .collect();
    let (_, c, h, w) = x.dims();
    let r = (k / 2) as isize;
    Ok(x.map_images((h, w), |_, src, dst| {
        for ch in 0..c {
            let s = &src[ch * h * w..(ch + 1) * h * w];
            for i in 0..h as isize {
                for j in 0..w as isize {
                    let mut acc = 0.0f32;
                    for di in -r..=r {
                        let y = i + di;
                        if y < 0 || y >= h as isize {
                            continue;
                        }
                        let krow = &kernel[((di + r) as usize) * k..];
                        for dj in -r..=r {
                            let xx = j + dj;
                            if xx >= 0 && xx < w as isize {
                                acc += krow[(dj + r) as usize] * s[y as usize * w + xx as usize];
                            }
                        }
                    }
                    dst[ch * h * w + i as usize * w + j as usize] = acc;
                }
            }
        }
    }))
}

/// Median blur over k×k neighbourhoods with zero padding (kornia `MedianBlur((k, k))`).
pub fn median_blur(x: &Tensor, k: usize) -> Result<Tensor> {
    on_host(x, |b| median_blur_batch(&b, k))
}

/// [`median_blur`] on a host batch.
pub fn median_blur_batch(x: &ImageBatch, k: usize) -> Result<ImageBatch> {
    check_kernel("median_blur", k)?;
    let (_, c, h, w) = x.dims();
    let r = (k / 2) as isize;
    let mid = k * k / 2;
    Ok(x.map_images((h, w), |_, src, dst| {
        let mut window = Vec::with_capacity(k * k);
        for ch in 0..c {
            let s = &src[ch * h * w..(ch + 1) * h * w];
            for i in 0..h as isize {
                for j in 0..w as isize {
                    window.clear();
                    for di in -r..=r {
                        for dj in -r..=r {
                            let (y, xx) = (i + di, j + dj);
                            let inside = y >= 0 && y < h as isize && xx >= 0 && xx < w as isize;
                            window.push(if inside {
                                s[y as usize * w + xx as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                    let (_, m, _) = window.select_nth_unstable_by(mid, f32::total_cmp);
                    dst[ch * h * w + i as usize * w + j as usize] = *m;
                }
            }
        }
    }))
}
