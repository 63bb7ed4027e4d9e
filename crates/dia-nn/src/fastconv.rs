//! Convolutions on the AVX-512 tiles (`microkernel`): the forward pass, the input gradient
//! (stride 1) and the weight gradient, with no im2col buffer written and none re-packed by a
//! gemm (issue #3). Performance-baseline §4 measured im2col plus gemm packing at ~20 % of a
//! step.
//!
//! Every pass reads a zero-padded copy of its input, so a kernel tap (c, ky, kx) is one fixed
//! offset and the inner loop tests no bounds.
//!
//! - Forward, stride 1, output rows at least 16 wide ("direct", [`microkernel::tile`]): 16
//!   consecutive output pixels of a row need 16 consecutive input floats at every tap, so the
//!   tile loads A straight from the padded input; the weights are the packed B.
//! - Otherwise ([`microkernel::tile_bt`]): 64 output channels × 6 output pixels; the weights
//!   are the packed A and each pixel's window is broadcast from the padded input.
//! - Input gradient, stride 1: `dx` is the forward of `dY` with the kernel flipped and its
//!   channel axes swapped, padding k − 1 − p; the same code. Strided convolutions keep the
//!   portable path for this one.
//! - Weight gradient: `dW[co][k] = Σ_p dY[co][p]·col[k][p]` as [`microkernel::tile_bt`] tiles of
//!   64 channels × 6 taps, `dY` transposed per block of pixels as A and the taps broadcast
//!   from each pixel's window; each thread sums its images into its own `dWᵀ`.
//!
//! [`ConvGeom::fits_tiles`] says when these can run; `conv` chooses between them, Winograd and
//! the gemm path.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::im2col::ConvGeom;
use crate::microkernel::{self, ATile, BTile, Steps, BT_MR, BT_NR, MR, MV, NR};
use crate::out::Out;

mod small_maps;

/// Pixels per contraction block of the weight gradient.
const PIXEL_BLOCK: usize = 256;

/// Whether the input gradient can run as a stride-1 forward (square kernel, p ≤ k − 1).
pub(crate) fn input_grad_supported(g: &ConvGeom) -> bool {
    g.stride == 1 && g.kh == g.kw && g.pad < g.kh && g.fits_tiles() && g.transposed().fits_tiles()
}

/// A zero-padded NCHW batch (borrowed when there is no padding).
struct Padded<'a> {
    data: Cow<'a, [f32]>,
    hp: usize,
    wp: usize,
    /// Floats per image.
    image: usize,
}

fn pad<'a>(x: &'a [f32], g: &ConvGeom) -> Padded<'a> {
    let (p, h, w) = (g.pad, g.h, g.w);
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let data = if p == 0 {
        Cow::Borrowed(&x[..g.n * g.cin * h * w])
    } else {
        let mut out = crate::storage::zeros(g.n * g.cin * hp * wp);
        out.par_chunks_mut(hp * wp)
            .zip(x.par_chunks(h * w))
            .for_each(|(dst, src)| {
                for y in 0..h {
                    dst[(y + p) * wp + p..][..w].copy_from_slice(&src[y * w..][..w]);
                }
            });
        Cow::Owned(out)
    };
    Padded {
        data,
        hp,
        wp,
        image: g.cin * hp * wp,
    }
}

/// Offset of each kernel tap (c, ky, kx) in a padded image, in increasing order.
fn taps(g: &ConvGeom, xp: &Padded) -> Vec<u32> {
    let mut t = Vec::with_capacity(g.k());
    for c in 0..g.cin {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                t.push(((c * xp.hp + ky) * xp.wp + kx) as u32);
            }
        }
    }
    t
}

/// The window offsets of `pixels`, as weight-gradient steps (sorted, as the pixels are).
fn windows(g: &ConvGeom, xp: &Padded, pixels: &[(usize, usize)]) -> Vec<u32> {
    pixels
        .iter()
        .map(|&(img, p)| window(g, xp, img, p) as u32)
        .collect()
}

/// The weight gradient's B operand for taps `k0..k0 + 6` (fewer at the end): each column
/// broadcasts one tap at every step's window.
fn tap_columns<'a>(xp: &'a Padded, steps: Steps<'a>, taps: &[u32], k0: usize) -> BTile<'a> {
    let cols = BT_NR.min(taps.len() - k0);
    BTile {
        data: &xp.data,
        steps,
        noff: std::array::from_fn(|n| taps[k0 + n.min(cols - 1)] as usize),
        cols,
    }
}

/// Offset in the padded batch of the window of output pixel `p` of image `img`.
fn window(g: &ConvGeom, xp: &Padded, img: usize, p: usize) -> usize {
    let (oy, ox) = (p / g.wo, p % g.wo);
    img * xp.image + oy * g.stride * xp.wp + ox * g.stride
}

/// The `k × n` matrix `w[col·k + kk]` (row-major `n × k`, as conv weights are stored) packed in
/// panels of `width` columns: panel j is `[k][width]` for columns `width·j..`, zero past `n`.
fn pack_panels(w: &[f32], k: usize, n: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; n.div_ceil(width) * k * width];
    out.par_chunks_mut(k * width)
        .enumerate()
        .for_each(|(j, p)| {
            for col in 0..width.min(n - j * width) {
                let src = &w[(j * width + col) * k..][..k];
                for (kk, v) in src.iter().enumerate() {
                    p[kk * width + col] = *v;
                }
            }
        });
    out
}

/// Forward: `y (n, cout, ho, wo)`, the convolution of `x (n, cin, h, w)` with
/// `w (cout, cin, kh, kw)`.
///
/// Stride 1 with rows of 16 or more: "direct" tiles, 48 output pixels (three row runs of up to
/// 16) × 8 channels, A read from the padded input. Otherwise 6 output pixels × 64 channels,
/// the weights packed as A and the pixels' windows broadcast from the padded input (on maps
/// of at most 4 × 4, without the taps in the padding: `small_maps`): no im2col is formed in
/// any case.
pub(crate) fn forward(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    let xp = pad(x, g);
    let tap_offsets = taps(g, &xp);
    let taps = Steps::new(&tap_offsets);
    // Not zeroed first: the tiles write every element (all pixels × all channel panels), and
    // `set_len` below comes after the last write.
    let len = g.n * g.cout * hw_o;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = Out::new(&mut y);
    if g.stride == 1 && g.wo >= 16 {
        let b = pack_panels(w, k, g.cout, NR);
        // Four tiles share each B panel while it is in L1.
        tiles(g).par_chunks(4).for_each_init(
            || [0f32; MR * NR],
            |acc, grp| {
                for j in 0..g.cout.div_ceil(NR) {
                    let bj = &b[j * k * NR..][..k * NR];
                    for t in grp {
                        let a = ATile {
                            data: &xp.data,
                            koff: taps,
                            voff: std::array::from_fn(|v| window(g, &xp, t[v].img, t[v].pix)),
                            lanes: std::array::from_fn(|v| t[v].lanes),
                        };
                        microkernel::tile(&a, bj, acc);
                        for (v, run) in t.iter().enumerate().filter(|(_, r)| r.lanes > 0) {
                            for n in 0..NR.min(g.cout - j * NR) {
                                out.write(
                                    (run.img * g.cout + j * NR + n) * hw_o + run.pix,
                                    &acc[n * MR + 16 * v..][..run.lanes],
                                );
                            }
                        }
                    }
                }
            },
        );
    } else if small_maps::applies(g) {
        small_maps::forward(w, g, &xp, &tap_offsets, &out);
    } else {
        let a = pack_panels(w, k, g.cout, BT_MR);
        // Groups of GROUP pixels: their tiles land in `acc` (`[pixel][64 channels]`), and each
        // channel's pixels are then written as runs along its output row. Written one float at
        // a time, the 64 channel planes of a pixel (a power-of-two stride apart) all fall in
        // one L1 set, and the 7×7 stride-2 stem ran at a fifth of its speed.
        const GROUP: usize = 4 * BT_NR;
        pixels(0..g.n, hw_o).par_chunks(GROUP).for_each_init(
            || vec![0f32; GROUP * BT_MR],
            |acc, grp| {
                for t in 0..g.cout.div_ceil(BT_MR) {
                    let at = &a[t * k * BT_MR..][..k * BT_MR];
                    for (px, dst) in grp.chunks(BT_NR).zip(acc.chunks_mut(BT_NR * BT_MR)) {
                        let b = BTile {
                            data: &xp.data,
                            steps: taps,
                            noff: std::array::from_fn(|n| {
                                let (img, p) = px[n.min(px.len() - 1)];
                                window(g, &xp, img, p)
                            }),
                            cols: px.len(),
                        };
                        microkernel::tile_bt(at, &b, dst, false);
                    }
                    let mut j0 = 0;
                    while j0 < grp.len() {
                        // Pixels j0.. are p0, p0 + 1, … of one image.
                        let (img, p0) = grp[j0];
                        let run = (grp.len() - j0).min(hw_o - p0);
                        let mut vals = [0f32; GROUP];
                        for m in 0..BT_MR.min(g.cout - t * BT_MR) {
                            for (j, v) in vals[..run].iter_mut().enumerate() {
                                *v = acc[(j0 + j) * BT_MR + m];
                            }
                            out.write((img * g.cout + t * BT_MR + m) * hw_o + p0, &vals[..run]);
                        }
                        j0 += run;
                    }
                }
            },
        );
    }
    // SAFETY: every one of the `len` elements was written above (see the comment at `y`).
    unsafe { y.set_len(len) };
    y
}

/// Output pixels (over the batch) up to which the weight gradient splits taps, not images,
/// across threads: below this a private `dWᵀ` per thread, zeroed, accumulated and summed, costs
/// more than the products (a 512-channel layer on 2 × 2 maps: 9 MB per thread for 1 GFLOP).
const FEW_PIXELS: usize = 1024;

/// The weight gradient with every pixel of the batch in one contraction: `dY` packed once, then
/// tasks of 6 taps, each writing its own columns of `dW` — no per-thread copies to sum.
fn backward_weight_by_taps(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    if g.n * hw_o == 0 {
        return vec![0f32; g.cout * k];
    }
    let xp = pad(x, g);
    let taps = taps(g, &xp);
    let ctiles = g.cout.div_ceil(BT_MR);
    let all = pixels(0..g.n, hw_o);
    let np = all.len();
    let woff = windows(g, &xp, &all);
    let steps = Steps::new(&woff);
    let mut abuf = vec![0f32; ctiles * np * BT_MR];
    abuf.par_chunks_mut(np * BT_MR)
        .enumerate()
        .for_each(|(t, at)| pack_grad(dy, g, &all, t * BT_MR, at));
    let len = g.cout * k;
    // Not zeroed first: every (channel, tap) is written by the one task that owns the tap.
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    let out = Out::new(&mut dw);
    (0..k.div_ceil(BT_NR)).into_par_iter().for_each_init(
        || [0f32; BT_MR * BT_NR],
        |acc, j| {
            let k0 = j * BT_NR;
            let b = tap_columns(&xp, steps, &taps, k0);
            let cols = b.cols;
            for t in 0..ctiles {
                microkernel::tile_bt(&abuf[t * np * BT_MR..][..np * BT_MR], &b, acc, false);
                for m in 0..BT_MR.min(g.cout - t * BT_MR) {
                    let vals: [f32; BT_NR] = std::array::from_fn(|n| acc[n * BT_MR + m]);
                    out.write((t * BT_MR + m) * k + k0, &vals[..cols]);
                }
            }
        },
    );
    // SAFETY: the tasks cover every tap group and, in each, every output channel.
    unsafe { dw.set_len(len) };
    dw
}

/// `dY` of the pixels of `block` for the 64 output channels from `co0`, pixel-major:
/// `at[s·64 + m] = dY[img][co0 + m][p]` for the `s`-th pixel `(img, p)`, zero past `cout`.
///
/// On AVX-512 (always, where this module runs) the runs of consecutive pixels of one image
/// are transposed 16 channels at a time in registers; the scalar loop it replaces wrote one
/// float per 64-float stride.
fn pack_grad(dy: &[f32], g: &ConvGeom, block: &[(usize, usize)], co0: usize, at: &mut [f32]) {
    let hw_o = g.hw_out();
    let mut s0 = 0;
    while s0 < block.len() {
        let (img, p0) = block[s0];
        // Pixels s0.. are p0, p0 + 1, … of image `img` up to the end of the block or image.
        let len = (block.len() - s0).min(hw_o - p0);
        for m0 in (0..BT_MR).step_by(16) {
            let rows: [Option<&[f32]>; 16] = std::array::from_fn(|l| {
                let co = co0 + m0 + l;
                (co < g.cout).then(|| &dy[(img * g.cout + co) * hw_o + p0..][..len])
            });
            crate::winograd::block_row(&rows, len, &mut at[s0 * BT_MR + m0..], BT_MR);
        }
        s0 += len;
    }
}

/// Every output pixel `(image, pixel)` of `images`, in order (so their windows are sorted).
fn pixels(images: std::ops::Range<usize>, hw: usize) -> Vec<(usize, usize)> {
    images
        .flat_map(|img| (0..hw).map(move |p| (img, p)))
        .collect()
}

/// Output pixels in runs of up to 16 along a row, three to a tile.
fn tiles(g: &ConvGeom) -> Vec<[Run; MV]> {
    let mut runs = Vec::new();
    for img in 0..g.n {
        for oy in 0..g.ho {
            for ox in (0..g.wo).step_by(16) {
                runs.push(Run {
                    img,
                    pix: oy * g.wo + ox,
                    lanes: 16.min(g.wo - ox),
                });
            }
        }
    }
    runs.chunks(MV)
        .map(|c| std::array::from_fn(|v| c.get(v).copied().unwrap_or_default()))
        .collect()
}

/// Up to 16 consecutive output pixels of one row of one image.
#[derive(Clone, Copy, Default)]
struct Run {
    img: usize,
    pix: usize,
    lanes: usize,
}

/// Input gradient of a stride-1 convolution ([`input_grad_supported`]): `dx (n, cin, h, w)`.
pub(crate) fn backward_input(dy: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    // The transposed conv's weight w'[ci][co][ky][kx] = w[co][ci][kh−1−ky][kw−1−kx]: channel
    // axes swapped, taps reversed.
    let taps = g.kh * g.kw;
    let mut wt = vec![0f32; w.len()];
    wt.par_chunks_mut(g.cout * taps)
        .enumerate()
        .for_each(|(ci, row)| {
            for co in 0..g.cout {
                let src = &w[(co * g.cin + ci) * taps..][..taps];
                for (d, v) in row[co * taps..][..taps].iter_mut().zip(src.iter().rev()) {
                    *d = *v;
                }
            }
        });
    forward(dy, &wt, &g.transposed())
}

/// Weight gradient: `dw (cout, cin, kh, kw)`, summed over the batch.
///
/// Tiles of 64 output channels × 6 taps, contracted over blocks of pixels: A is `dY` of the
/// block transposed (pixel-major, 64 channels per step), B the taps broadcast from the padded
/// input at each pixel's window. Each thread sums its images into its own `dWᵀ`; when the
/// batch has few output pixels (the late layers of a small image), the threads split the taps
/// instead ([`backward_weight_by_taps`]).
pub(crate) fn backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    if g.n * hw_o <= FEW_PIXELS {
        return backward_weight_by_taps(x, dy, g);
    }
    let xp = pad(x, g);
    let taps = taps(g, &xp);
    let ctiles = g.cout.div_ceil(BT_MR);
    let threads = rayon::current_num_threads().clamp(1, g.n.max(1));
    let partials: Vec<Vec<f32>> = (0..threads)
        .into_par_iter()
        .map(|th| {
            let (lo, hi) = (th * g.n / threads, (th + 1) * g.n / threads);
            let mut dwt = vec![0f32; k * g.cout];
            let mut abuf = vec![0f32; ctiles * PIXEL_BLOCK * BT_MR];
            let mut acc = [0f32; BT_MR * BT_NR];
            for block in pixels(lo..hi, hw_o).chunks(PIXEL_BLOCK) {
                let np = block.len();
                let woff = windows(g, &xp, block);
                let steps = Steps::new(&woff);
                // A: dY of the block, one step per pixel, 64 channels per tile.
                for t in 0..ctiles {
                    let at = &mut abuf[t * np * BT_MR..][..np * BT_MR];
                    pack_grad(dy, g, block, t * BT_MR, at);
                }
                for k0 in (0..k).step_by(BT_NR) {
                    let b = tap_columns(&xp, steps, &taps, k0);
                    let cols = b.cols;
                    for t in 0..ctiles {
                        microkernel::tile_bt(
                            &abuf[t * np * BT_MR..][..np * BT_MR],
                            &b,
                            &mut acc,
                            false,
                        );
                        let valid = BT_MR.min(g.cout - t * BT_MR);
                        for n in 0..cols {
                            let d = &mut dwt[(k0 + n) * g.cout + t * BT_MR..][..valid];
                            for (d, s) in d.iter_mut().zip(&acc[n * BT_MR..]) {
                                *d += s;
                            }
                        }
                    }
                }
            }
            dwt
        })
        .collect();
    // dW[co][kk] = Σ_threads dWᵀ[kk][co], 16 rows of dW per task so that reads of dWᵀ are
    // 64-byte runs and writes are 16 sequential streams.
    let mut dw = vec![0f32; g.cout * k];
    dw.par_chunks_mut(16 * k)
        .enumerate()
        .for_each(|(blk, rows)| {
            let co0 = 16 * blk;
            let nco = rows.len() / k;
            for p in &partials {
                for kk in 0..k {
                    let src = &p[kk * g.cout + co0..][..nco];
                    for (c, v) in src.iter().enumerate() {
                        rows[c * k + kk] += v;
                    }
                }
            }
        });
    dw
}
