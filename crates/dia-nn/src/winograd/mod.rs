//! Winograd convolution F(4×4, 3×3) for 3 × 3 stride-1 layers on AVX-512 (issue #3).
//!
//! A 3 × 3 convolution over a 4 × 4 output tile is, in the transformed domain, 36 element-wise
//! products (Lavin & Gray 2016): `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 6 × 6 input patch `d`
//! and the kernel `g`. Summed over input channels, each of the 36 positions ξ is a matrix
//! product `M[ξ] = V[ξ] · U[ξ]` (tiles × C times C × K), so the layer costs 36 small gemms
//! instead of 144 multiply-adds per output pixel per channel pair: 4× fewer. The direct tiles
//! (`fastconv`) already run at 75–90 % of the FMA peak on these layers, so this is the only way
//! left to make them much faster — it is how the 3 × 3 stride-1 layers of ResNet-18, ~88 % of
//! its convolution work, are computed here on CPUs with AVX-512.
//!
//! The passes:
//! 1. the input, zero-padded, in a channel-blocked layout (16 channels per 64-byte run);
//! 2. the filter transform `U = G g Gᵀ`, packed as [`microkernel::tile_bt`] panels;
//! 3. per block of tiles: the input transform `V = Bᵀ d B` (16 channels per vector), the 36
//!    gemms on the register tiles, the output transform `Y = Aᵀ M A` and a 16 × 16 transpose
//!    back to NCHW. Small layers run blocks of a few dozen tiles per thread so `V` and `M` stay
//!    in cache; layers with large weights (C·K > 128²) run each pass over all tiles at once, so
//!    the transformed weights are read once per pass rather than once per block.
//!
//! The transforms round differently from a direct sum: the results agree with the direct
//! convolution to 1e-6–1e-5 relative (tested against the gemm path), inside the 1e-4 the
//! layers are held to. `DIA_NO_WINOGRAD=1` turns this path off.

mod filter;
mod layout;
mod transforms;
mod weight_grad;

pub(crate) use transforms::block_row;
pub(crate) use weight_grad::backward_weight;

use rayon::prelude::*;

use crate::im2col::ConvGeom;
use crate::microkernel::{self, BTile, Steps, BT_MR, BT_NR};
use crate::out::Out;
use crate::scratch::Scratch;
use layout::Source;
use transforms::LANES;

/// Transformed positions per tile (α² with α = 6).
const XI: usize = 36;
/// Weights (in floats, C·K) above which each pass runs over all tiles at once.
const BIG_WEIGHTS: usize = 128 * 128;
/// Floats of `V` per block when blocks are small enough to stay in cache.
const BLOCK_FLOATS: usize = 64 * 1024;
/// Floats of `V` per chunk of tiles when each pass runs over all of them.
const CHUNK_FLOATS: usize = 4 << 20;

/// Whether this convolution can run as Winograd F(4×4, 3×3): 3 × 3, stride 1, padding ≤ 2,
/// 16 or more channels in and out, an output that fills at least half its 4 × 4 tiles, on the
/// AVX-512 tiles. (Whether the kernel policy allows it is `conv`'s choice.)
pub(crate) fn applies(g: &ConvGeom) -> bool {
    // Fewer than 16 channels on either side would leave most of a vector or a tile empty (the
    // RGB stem: the direct tiles are faster there).
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.pad <= 2
        && g.cin >= LANES
        && g.cout >= LANES
        // Tiles mostly outside the output (a 2 × 2 map pads to 4 × 4) would waste more than
        // the 4× the transform saves is worth at the tiles' efficiency.
        && 16 * g.ho.div_ceil(4) * g.wo.div_ceil(4) <= 2 * g.ho * g.wo
        && g.fits_tiles()
}

/// Sizes of one Winograd pass.
struct Plan {
    /// Tiles per column and per row.
    th: usize,
    tw: usize,
    /// Padded input extent: every tile's 6 × 6 patch lies inside.
    hp: usize,
    wp: usize,
    /// Input channel blocks of 16, and channels rounded up to them.
    cblocks: usize,
    cp: usize,
    /// Output channel panels of 64, and channels rounded up to them.
    kpanels: usize,
    kp: usize,
    tiles: usize,
}

impl Plan {
    fn new(g: &ConvGeom) -> Self {
        let (th, tw) = (g.ho.div_ceil(4), g.wo.div_ceil(4));
        let cblocks = g.cin.div_ceil(LANES);
        let kpanels = g.cout.div_ceil(BT_MR);
        Self {
            th,
            tw,
            hp: 4 * th + 2,
            wp: 4 * tw + 2,
            cblocks,
            cp: cblocks * LANES,
            kpanels,
            kp: kpanels * BT_MR,
            tiles: g.n * th * tw,
        }
    }

    /// (image, tile row, tile column) of tile `t`.
    fn tile(&self, t: usize) -> (usize, usize, usize) {
        let per = self.th * self.tw;
        (t / per, (t % per) / self.tw, t % self.tw)
    }

    /// Whether the weights are small enough for cache-sized blocks of tiles (else each pass
    /// runs over all tiles, or large chunks of them, at once).
    fn blocked_schedule(&self, g: &ConvGeom) -> bool {
        g.cin * g.cout <= BIG_WEIGHTS
    }

    /// Tiles per block: `V` of a block fills about [`BLOCK_FLOATS`], a whole number of
    /// `tile_bt` column groups.
    fn per_block(&self) -> usize {
        (BLOCK_FLOATS / (XI * self.cp) / BT_NR * BT_NR).clamp(BT_NR, 16 * BT_NR)
    }

    /// Tiles per chunk when each pass runs over many tiles at once.
    fn per_chunk(&self) -> usize {
        (CHUNK_FLOATS / (XI * self.cp)).max(BT_NR)
    }

    /// The convolution's input `x` as blocked rows padded to this plan's width.
    fn input_source<'a>(&self, x: &'a [f32], g: &ConvGeom) -> Source<'a> {
        Source {
            x,
            c: g.cin,
            h: g.h,
            w: g.w,
            pad: g.pad,
            wp: self.wp,
        }
    }

    /// `V` (`vt[ξ·cp + c]`) of the tile whose patch starts at row `4·ty`, column `4·tx` of
    /// `rows` blocked rows (`[c/16][rows][wp][16]`, see [`Source::rows`]).
    fn input(&self, rows: &[f32], nrows: usize, ty: usize, tx: usize, vt: &mut [f32]) {
        for cb in 0..self.cblocks {
            let src = &rows[((cb * nrows + 4 * ty) * self.wp + 4 * tx) * LANES..];
            transforms::input_tile(src, self.wp * LANES, &mut vt[cb * LANES..], self.cp);
        }
    }

    /// `V` of tile `t` from the whole blocked batch (`[n][c/16][hp][wp][16]`).
    fn input_batch(&self, xb: &[f32], t: usize, vt: &mut [f32]) {
        let (img, ty, tx) = self.tile(t);
        let image = self.cblocks * self.hp * self.wp * LANES;
        self.input(&xb[img * image..][..image], self.hp, ty, tx, vt);
    }

    /// Blocks of whole tile rows of one image, about [`Plan::per_block`] tiles each: the
    /// number of blocks, and the tile rows per block.
    fn row_blocks(&self, n: usize) -> (usize, usize) {
        let rows = (self.per_block() / self.tw).clamp(1, self.th);
        (n * self.th.div_ceil(rows), rows)
    }

    /// Block `b` of [`Plan::row_blocks`]: (image, first tile row, tile rows, first tile).
    fn row_block(&self, b: usize, rows: usize) -> (usize, usize, usize, usize) {
        let per_image = self.th.div_ceil(rows);
        let (img, ty0) = (b / per_image, (b % per_image) * rows);
        let ny = rows.min(self.th - ty0);
        (img, ty0, ny, (img * self.th + ty0) * self.tw)
    }

    /// Where 16 channels from `k0` of tile `p` start in a buffer laid out
    /// `[ξ][k/64][tile][64]` for `np` tiles, and the distance from one ξ to the next.
    fn panel_offset(&self, np: usize, p: usize, k0: usize) -> (usize, usize) {
        (
            ((k0 / BT_MR) * np + p) * BT_MR + k0 % BT_MR,
            self.kpanels * np * BT_MR,
        )
    }
}

/// Everything the three per-tile steps read.
struct Pass<'a> {
    g: &'a ConvGeom,
    plan: Plan,
    x: Source<'a>,
    u: &'a [f32],
    steps: Vec<u32>,
    out: Out,
}

/// Forward: `y (n, cout, ho, wo)` for `x (n, cin, h, w)` and `w (cout, cin, 3, 3)`
/// ([`applies`] must hold).
pub(crate) fn forward(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    forward_with(x, &filter::transform(w, g.cout, g.cin, false), g)
}

/// The transformed filters of a forward pass (`U = G g Gᵀ`, packed as [`forward_with`] reads
/// them), to keep for a layer whose weights do not change ([`crate::Conv2d::freeze`]).
pub(crate) fn forward_filter(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    filter::transform(w, g.cout, g.cin, false).to_vec()
}

/// [`forward`] with the filters already transformed by [`forward_filter`] (same `w`, same
/// channel counts).
pub(crate) fn forward_with(x: &[f32], u: &[f32], g: &ConvGeom) -> Vec<f32> {
    assert!(
        applies(g),
        "winograd: not a 3×3 stride-1 convolution on the vector tiles"
    );
    assert_eq!(
        u.len(),
        g.cout.div_ceil(BT_MR) * XI * g.cin * BT_MR,
        "winograd: transformed filter size"
    );
    run(x, u, g)
}

/// Input gradient `dx (n, cin, h, w)` of a convolution whose transposed geometry
/// ([`ConvGeom::transposed`]) [`applies`]: the forward of `dY` with the kernel rotated by 180°
/// and its channel axes swapped, a swap the filter transform makes as it reads `w`.
pub(crate) fn backward_input(dy: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let tg = g.transposed();
    assert!(
        applies(&tg),
        "winograd: not a 3×3 stride-1 convolution on the vector tiles"
    );
    run(dy, &filter::transform(w, tg.cout, tg.cin, true), &tg)
}

/// The convolution of `x` with the transformed filters `u`.
fn run(x: &[f32], u: &[f32], g: &ConvGeom) -> Vec<f32> {
    let plan = Plan::new(g);
    let len = g.n * g.cout * g.ho * g.wo;
    // Not zeroed first: every output pixel of every channel is written by the output
    // transform of the tile that holds it; `set_len` comes after the last write.
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let pass = Pass {
        g,
        x: plan.input_source(x, g),
        u,
        steps: (0..g.cin as u32).collect(),
        out: Out::new(&mut y),
        plan,
    };
    let Plan {
        tiles,
        cp,
        kp,
        kpanels,
        ..
    } = pass.plan;
    if pass.plan.blocked_schedule(g) {
        let (blocks, rows) = pass.plan.row_blocks(g.n);
        let np_max = rows * pass.plan.tw;
        let xrows = 4 * rows + 2;
        (0..blocks).into_par_iter().for_each_init(
            || {
                (
                    vec![0f32; pass.plan.cblocks * xrows * pass.plan.wp * LANES],
                    vec![0f32; np_max * XI * cp],
                    vec![0f32; np_max * XI * kp],
                )
            },
            |(xr, v, m), b| {
                let (img, ty0, ny, t0) = pass.plan.row_block(b, rows);
                let np = ny * pass.plan.tw;
                let nrows = 4 * ny + 2;
                let xr = &mut xr[..pass.plan.cblocks * nrows * pass.plan.wp * LANES];
                for (cb, dst) in xr.chunks_mut(nrows * pass.plan.wp * LANES).enumerate() {
                    pass.x.rows(img, cb, 4 * ty0, dst);
                }
                let (v, m) = (&mut v[..np * XI * cp], &mut m[..np * XI * kp]);
                for (p, vt) in v.chunks_mut(XI * cp).enumerate() {
                    let (ty, tx) = (p / pass.plan.tw, p % pass.plan.tw);
                    pass.plan.input(xr, nrows, ty, tx, vt);
                }
                for (j, mj) in m.chunks_mut(np * BT_MR).enumerate() {
                    pass.gemm(j / kpanels, j % kpanels, v, mj);
                }
                for p in 0..np {
                    pass.output(t0, p, np, m);
                }
            },
        );
    } else {
        let xb = pass.x.blocked(g.n, pass.plan.hp);
        let per_chunk = pass.plan.per_chunk();
        for t0 in (0..tiles).step_by(per_chunk) {
            let np = per_chunk.min(tiles - t0);
            // Scratch: the input transforms write all of `v`, the gemms all of `m`.
            let mut v = Scratch::take(np * XI * cp);
            v.par_chunks_mut(XI * cp)
                .enumerate()
                .for_each(|(p, vt)| pass.plan.input_batch(&xb, t0 + p, vt));
            let mut m = Scratch::take(np * XI * kp);
            m.par_chunks_mut(np * BT_MR)
                .enumerate()
                .for_each(|(j, mj)| pass.gemm(j / kpanels, j % kpanels, &v, mj));
            (0..np)
                .into_par_iter()
                .for_each(|p| pass.output(t0, p, np, &m));
        }
    }
    // SAFETY: every output element was written (see the comment at `y`).
    unsafe { y.set_len(len) };
    y
}

impl Pass<'_> {
    /// `M[ξ]` for output channel panel `kt` of every tile in `v` (`[tile][ξ][cp]`), written to
    /// `m[tile·64 + k]`.
    fn gemm(&self, xi: usize, kt: usize, v: &[f32], m: &mut [f32]) {
        let (cin, cp) = (self.g.cin, self.plan.cp);
        let a = &self.u[(kt * XI + xi) * cin * BT_MR..][..cin * BT_MR];
        let steps = Steps::new(&self.steps);
        let np = v.len() / (XI * cp);
        for (p0, out) in (0..np).step_by(BT_NR).zip(m.chunks_mut(BT_NR * BT_MR)) {
            let cols = BT_NR.min(np - p0);
            let b = BTile {
                data: v,
                steps,
                noff: std::array::from_fn(|n| ((p0 + n.min(cols - 1)) * XI + xi) * cp),
                cols,
            };
            microkernel::tile_bt(a, &b, out, false);
        }
    }

    /// The output pixels of tile `t0 + p` from `m`, laid out `[ξ][k/64][tile][64]` for the `np`
    /// tiles from `t0`.
    fn output(&self, t0: usize, p: usize, np: usize, m: &[f32]) {
        let g = self.g;
        let (img, ty, tx) = self.plan.tile(t0 + p);
        let (rows, cols) = (4.min(g.ho - 4 * ty), 4.min(g.wo - 4 * tx));
        for k0 in (0..g.cout).step_by(LANES) {
            let (base, stride) = self.plan.panel_offset(np, p, k0);
            let blk = transforms::output_tile(&m[base..], stride);
            for (l, b) in blk.iter().enumerate().take(g.cout - k0) {
                let row = |r: usize| ((img * g.cout + k0 + l) * g.ho + 4 * ty + r) * g.wo + 4 * tx;
                if cols == 4 {
                    for (r, b4) in b.as_chunks::<4>().0.iter().enumerate().take(rows) {
                        self.out.write4(row(r), b4);
                    }
                } else {
                    for r in 0..rows {
                        self.out.write(row(r), &b[4 * r..][..cols]);
                    }
                }
            }
        }
    }
}
