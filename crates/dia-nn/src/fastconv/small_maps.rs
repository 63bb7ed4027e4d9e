//! The forward pass on maps of a few pixels, without the taps that fall in the padding
//! (issue #17).
//!
//! On the 2 × 2 maps of ResNet-18's last stage at 64 px (512 channels, 3 × 3, padding 1), each
//! output pixel's window holds 4 of the 9 taps inside the image; the other 5 read the zero
//! padding, so [`super::forward`]'s tiles spent 5/9 of their products on zeros — and those three
//! layers were a third of the 64-px step's convolution time. Here the output positions are
//! grouped by the rows and columns of the kernel that land inside the image (one class per
//! position on a 2 × 2 map; corners, edges and the interior on a 4 × 4 one), and each class
//! is one gemm over its own taps: the weights of just those taps times those taps of the
//! class's pixels. The input gradient of a stride-1 layer is this forward of `dY`, so it gains
//! alike. The sums are the same products less the zero terms (in gemm's order).
//!
//! On the Zen 3 VM (`layer_timings`, `DIA_LAYERS=imagenet`, three runs alternating the binaries
//! without and with this path, then with the broadcast tiles of [`super::forward`] per class)
//! one such layer's forward took 13.1–16.5 ms without and 8.8–12.4 ms with it, its input
//! gradient 15.7–21.0 and 10.4–15.4 ms. The tiles streamed the class's packed weights (4 MB
//! for 512 channels) from L3 once per six pixels; as one gemm per class (issue #17; four runs
//! of each binary alternated) the forward went from 8.4–9.0 to 6.8–8.0 ms and the input
//! gradient from 9.5–10.7 to 8.2–9.2 ms.

use std::ops::Range;

use rayon::prelude::*;

use super::{window, Padded};
use crate::gemm::{sgemm, MatRef};
use crate::im2col::ConvGeom;
use crate::out::Out;

/// Whether [`forward`] runs: a padded map of at most 4 × 4 output pixels whose windows keep at
/// most half of the taps inside the image. (Where more are kept, as on the stride-2 entry to
/// the 2 × 2 maps (25/36) or a 4 × 4 map (25/36), the per-class packing cost more than the
/// skipped products saved with the tiles — 5.9 → 7.1 ms for the former on the Zen 3 VM,
/// `layer_timings`, one run each — and made no difference outside the VM's noise with the
/// gemm, three runs each.)
pub(super) fn applies(g: &ConvGeom) -> bool {
    if g.pad == 0 || g.ho > 4 || g.wo > 4 {
        return false;
    }
    let kept: usize = (classes(g).iter())
        .map(|c| c.positions.len() * c.rows.len() * c.cols.len())
        .sum();
    2 * kept <= g.hw_out() * g.kh * g.kw
}

/// The kernel offsets `k` along one axis whose input `o·s + k − p` lies in `0..size`.
fn inside(o: usize, g: &ConvGeom, kernel: usize, size: usize) -> Range<usize> {
    let start = o * g.stride;
    let lo = g.pad.saturating_sub(start);
    let hi = kernel.min((size + g.pad).saturating_sub(start));
    lo..hi.max(lo)
}

/// One class: the kernel rows and columns inside the image, and its output positions.
struct Class {
    rows: Range<usize>,
    cols: Range<usize>,
    positions: Vec<usize>,
}

fn classes(g: &ConvGeom) -> Vec<Class> {
    let mut out: Vec<Class> = Vec::new();
    for p in 0..g.hw_out() {
        let rows = inside(p / g.wo, g, g.kh, g.h);
        let cols = inside(p % g.wo, g, g.kw, g.w);
        match out.iter_mut().find(|c| c.rows == rows && c.cols == cols) {
            Some(c) => c.positions.push(p),
            None => out.push(Class {
                rows,
                cols,
                positions: vec![p],
            }),
        }
    }
    out
}

/// Writes `y (n, cout, ho, wo)` through `out`, from the padded input `xp`, the weights `w`
/// (cout, cin, kh, kw) and the tap offsets `taps` of [`super::taps`].
///
/// Per class, one gemm: the class's taps of every weight row (cout × S) times those taps of
/// every pixel of the class (S × pixels, gathered from the padded input pixel by pixel: this
/// class's im2col, 512 KB for a 2 × 2 class at batch 64), so that gemm's blocking keeps both operands
/// in cache. (The broadcast tiles streamed all the packed weights, 4 MB for 512 channels,
/// from L3 once per six pixels: about a third of the machine's peak on these layers.)
pub(super) fn forward(w: &[f32], g: &ConvGeom, xp: &Padded, taps: &[u32], out: &Out) {
    let (k, hw_o) = (g.k(), g.hw_out());
    for class in classes(g) {
        // The taps (c, ky, kx) of the class, in increasing order.
        let mut kept = Vec::with_capacity(g.cin * class.rows.len() * class.cols.len());
        for c in 0..g.cin {
            for ky in class.rows.clone() {
                kept.extend(class.cols.clone().map(|kx| (c * g.kh + ky) * g.kw + kx));
            }
        }
        let pixels: Vec<(usize, usize)> = (0..g.n)
            .flat_map(|img| class.positions.iter().map(move |&p| (img, p)))
            .collect();
        let (s_len, np) = (kept.len(), pixels.len());
        let mut y = vec![0f32; g.cout * np];
        // A class whose windows are all padding has no taps: its outputs are zeros.
        if s_len > 0 {
            let mut a = vec![0f32; g.cout * s_len];
            a.par_chunks_mut(s_len).enumerate().for_each(|(co, dst)| {
                let row = &w[co * k..][..k];
                for (d, &kk) in dst.iter_mut().zip(&kept) {
                    *d = row[kk];
                }
            });
            // Pixel by pixel, each reading its own image's taps in order. (Tap by tap, the 64
            // loads of one tap lie an image apart, `cin`·16 floats — a power of two for the
            // ResNet — so they fall in a few cache sets.)
            let tap_at: Vec<usize> = kept.iter().map(|&kk| taps[kk] as usize).collect();
            let mut b = vec![0f32; np * s_len];
            b.par_chunks_mut(s_len)
                .zip(&pixels)
                .for_each(|(dst, &(img, p))| {
                    let at = window(g, xp, img, p);
                    for (d, &tap) in dst.iter_mut().zip(&tap_at) {
                        *d = xp.data[at + tap];
                    }
                });
            sgemm(
                &mut y,
                np,
                MatRef::row_major(&a, g.cout, s_len),
                MatRef::row_major(&b, np, s_len).t(),
                false,
            );
        }
        y.par_chunks(np).enumerate().for_each(|(co, row)| {
            for (v, &(img, p)) in row.iter().zip(&pixels) {
                out.write((img * g.cout + co) * hw_o + p, std::slice::from_ref(v));
            }
        });
    }
}
