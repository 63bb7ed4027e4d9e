//! The forward pass on maps of a few pixels, without the taps that fall in the padding
//! (issue #17).
//!
//! On the 2 × 2 maps of ResNet-18's last stage at 64 px (512 channels, 3 × 3, padding 1), each
//! output pixel's window holds 4 of the 9 taps inside the image; the other 5 read the zero
//! padding, so [`super::forward`]'s tiles spent 5/9 of their products on zeros — and those three
//! layers were a third of the 64-px step's convolution time. Here the output positions are
//! grouped by the rows and columns of the kernel that land inside the image (one class per
//! position on a 2 × 2 map; corners, edges and the interior on a 4 × 4 one), and each class
//! runs the same [`microkernel::tile_bt`] over its own taps, with the weights of just those
//! taps packed. The input gradient of a stride-1 layer is this forward of `dY`, so it gains
//! alike. The sums are the same products in the same order, less the zero terms.
//!
//! On the Zen 3 VM (`layer_timings`, `DIA_LAYERS=imagenet`, three runs alternating the binaries
//! without and with this path) one such layer's forward took 13.1–16.5 ms without and
//! 8.8–12.4 ms with it, its input gradient 15.7–21.0 and 10.4–15.4 ms; packing each class's
//! weights keeps it from the full 5/9.

use std::ops::Range;

use rayon::prelude::*;

use super::{window, Padded};
use crate::im2col::ConvGeom;
use crate::microkernel::{self, BTile, Steps, BT_MR, BT_NR};
use crate::out::Out;

/// Whether [`forward`] runs: a padded map of at most 4 × 4 output pixels whose windows keep at
/// most half of the taps inside the image. (Where more are kept, as on the stride-2 entry to
/// the 2 × 2 maps (25/36) or a 4 × 4 map (25/36), the per-class packing cost more than the
/// skipped products saved: 5.9 → 7.1 ms for the former on the Zen 3 VM, `layer_timings`, one
/// run each.)
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
pub(super) fn forward(w: &[f32], g: &ConvGeom, xp: &Padded, taps: &[u32], out: &Out) {
    let (k, hw_o) = (g.k(), g.hw_out());
    let ctiles = g.cout.div_ceil(BT_MR);
    for class in classes(g) {
        // The taps (c, ky, kx) of the class, in increasing order (as their offsets).
        let mut kept = Vec::with_capacity(g.cin * class.rows.len() * class.cols.len());
        for c in 0..g.cin {
            for ky in class.rows.clone() {
                kept.extend(class.cols.clone().map(|kx| (c * g.kh + ky) * g.kw + kx));
            }
        }
        let steps: Vec<u32> = kept.iter().map(|&kk| taps[kk]).collect();
        let steps = Steps::new(&steps);
        // Their weights as tile_bt panels: panel t is [kept][64] for channels 64t...
        // (At least one row: a class whose window is all padding has no taps, and tile_bt
        // then writes zeros.)
        let panel = kept.len().max(1) * BT_MR;
        let mut a = vec![0f32; ctiles * panel];
        a.par_chunks_mut(panel).enumerate().for_each(|(t, panel)| {
            for m in 0..BT_MR.min(g.cout - t * BT_MR) {
                let row = &w[(t * BT_MR + m) * k..][..k];
                for (s, &kk) in kept.iter().enumerate() {
                    panel[s * BT_MR + m] = row[kk];
                }
            }
        });
        let pixels: Vec<(usize, usize)> = (0..g.n)
            .flat_map(|img| class.positions.iter().map(move |&p| (img, p)))
            .collect();
        pixels.par_chunks(BT_NR).for_each_init(
            || [0f32; BT_MR * BT_NR],
            |acc, px| {
                let b = BTile {
                    data: &xp.data,
                    steps,
                    noff: std::array::from_fn(|n| {
                        let (img, p) = px[n.min(px.len() - 1)];
                        window(g, xp, img, p)
                    }),
                    cols: px.len(),
                };
                for t in 0..ctiles {
                    let at = &a[t * panel..][..panel];
                    microkernel::tile_bt(at, &b, acc, false);
                    for (j, &(img, p)) in px.iter().enumerate() {
                        for m in 0..BT_MR.min(g.cout - t * BT_MR) {
                            let at = (img * g.cout + t * BT_MR + m) * hw_o + p;
                            out.write(at, &acc[j * BT_MR + m..][..1]);
                        }
                    }
                }
            },
        );
    }
}
