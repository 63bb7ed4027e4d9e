//! im2col and col2im: the layout changes that turn a convolution into a matrix product.
//!
//! For a chunk of `nb` images, `col` has one row per (input channel, ky, kx) — K = C·kh·kw rows —
//! and one column per (image, output pixel) — `nb·Ho·Wo` columns. Each row is written
//! contiguously (one rayon task per row), which is what makes this faster than candle's tiled
//! im2col that writes K values at a stride for every output pixel (performance-baseline §4a).

use rayon::prelude::*;

/// The shapes of one 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// The geometry of the input gradient as a stride-1 convolution of `dY`.
    pub(crate) fn transposed(&self) -> ConvGeom {
        ConvGeom {
            n: self.n,
            cin: self.cout,
            h: self.ho,
            w: self.wo,
            cout: self.cin,
            kh: self.kh,
            kw: self.kw,
            stride: 1,
            pad: self.kh.saturating_sub(1 + self.pad),
            ho: self.h,
            wo: self.w,
        }
    }

    /// Whether the AVX-512 tiles can run this convolution (the CPU has AVX-512; offsets fit
    /// in 32 bits).
    pub(crate) fn fits_tiles(&self) -> bool {
        let padded = self.n * self.cin * (self.h + 2 * self.pad) * (self.w + 2 * self.pad);
        let out = self.n * self.cout * self.hw_out();
        crate::microkernel::available() && padded.max(out) < i32::MAX as usize
    }

    /// Rows of `col`: C·kh·kw.
    pub fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// Output pixels per image.
    pub fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
    /// Input pixels per image.
    pub fn hw_in(&self) -> usize {
        self.h * self.w
    }
    /// Images per chunk so that `col` holds at most `budget` floats (at least one image).
    ///
    /// Feature maps of 512 pixels or more are done one image at a time: the gemm is already
    /// wide enough, and its result lands directly in the output without a scatter copy.
    pub fn chunk(&self, budget: usize) -> usize {
        if self.hw_out() >= 512 {
            return 1;
        }
        (budget / (self.k() * self.hw_out()).max(1)).clamp(1, self.n.max(1))
    }
    /// The output column range of `ox` for which the input column `ox·s + kx − pad` is inside
    /// the image.
    fn valid_ox(&self, kx: usize) -> (usize, usize) {
        let lo = (self.pad.saturating_sub(kx)).div_ceil(self.stride);
        // ox·s + kx − pad ≤ w − 1  ⇔  ox ≤ (w − 1 + pad − kx) / s
        let hi = if self.w + self.pad > kx {
            ((self.w - 1 + self.pad - kx) / self.stride + 1).min(self.wo)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Fills row `row` = (c, ky, kx) of `col` for images `b0..b0+nb`.
fn fill_row(x: &[f32], g: &ConvGeom, b0: usize, nb: usize, row: usize, dst: &mut [f32]) {
    let hw_o = g.hw_out();
    let c = row / (g.kh * g.kw);
    let ky = (row / g.kw) % g.kh;
    let kx = row % g.kw;
    let (lo, hi) = g.valid_ox(kx);
    for b in 0..nb {
        let src = &x[((b0 + b) * g.cin + c) * g.hw_in()..][..g.hw_in()];
        for oy in 0..g.ho {
            let d = &mut dst[b * hw_o + oy * g.wo..][..g.wo];
            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
            if iy < 0 || iy >= g.h as isize {
                d.fill(0.0);
                continue;
            }
            let srow = &src[iy as usize * g.w..][..g.w];
            d[..lo].fill(0.0);
            d[hi..].fill(0.0);
            if g.stride == 1 {
                let start = lo + kx - g.pad;
                d[lo..hi].copy_from_slice(&srow[start..start + (hi - lo)]);
            } else {
                for (ox, v) in d[lo..hi].iter_mut().enumerate() {
                    *v = srow[(ox + lo) * g.stride + kx - g.pad];
                }
            }
        }
    }
}

/// Fills `col` (K × nb·Ho·Wo) from images `b0..b0+nb` of `x` (NCHW), zero outside the image.
pub(crate) fn im2col(x: &[f32], g: &ConvGeom, b0: usize, nb: usize, col: &mut [f32]) {
    let ncol = nb * g.hw_out();
    col[..g.k() * ncol]
        .par_chunks_mut(ncol)
        .enumerate()
        .for_each(|(row, dst)| fill_row(x, g, b0, nb, row, dst));
}

/// [`im2col`] of one image on the calling thread.
pub(crate) fn im2col_serial(x: &[f32], g: &ConvGeom, b: usize, col: &mut [f32]) {
    let hw_o = g.hw_out();
    for (row, dst) in col[..g.k() * hw_o].chunks_mut(hw_o).enumerate() {
        fill_row(x, g, b, 1, row, dst);
    }
}

/// Adds `col` (K × nb·Ho·Wo) back onto images `b0..b0+nb` of `dx` (NCHW): the adjoint of
/// [`im2col`]. One rayon task per (image, channel) plane, so no two tasks write the same value.
pub(crate) fn col2im(col: &[f32], g: &ConvGeom, b0: usize, nb: usize, dx: &mut [f32]) {
    let hw_o = g.hw_out();
    let ncol = nb * hw_o;
    let planes = &mut dx[b0 * g.cin * g.hw_in()..(b0 + nb) * g.cin * g.hw_in()];
    planes
        .par_chunks_mut(g.hw_in())
        .enumerate()
        .for_each(|(p, plane)| {
            let (b, c) = (p / g.cin, p % g.cin);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (c * g.kh + ky) * g.kw + kx;
                    let src = &col[row * ncol + b * hw_o..][..hw_o];
                    let (lo, hi) = g.valid_ox(kx);
                    for oy in 0..g.ho {
                        let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let drow = &mut plane[iy as usize * g.w..][..g.w];
                        let s = &src[oy * g.wo..][..g.wo];
                        if g.stride == 1 {
                            // Contiguous on both sides: a plain vector add.
                            let start = lo + kx - g.pad;
                            for (d, v) in drow[start..start + (hi - lo)].iter_mut().zip(&s[lo..hi])
                            {
                                *d += v;
                            }
                        } else {
                            for ox in lo..hi {
                                drow[ox * g.stride + kx - g.pad] += s[ox];
                            }
                        }
                    }
                }
            }
        });
}
