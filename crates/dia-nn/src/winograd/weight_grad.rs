//! The weight gradient of Winograd F(4×4, 3×3).
//!
//! The forward pass is `Y = Aᵀ [Σ_c U[k][c] ⊙ V[c]] A` with `U = G g Gᵀ`, an identity, so its
//! adjoint is the exact weight gradient: with `dM = A dY Aᵀ` per 4 × 4 tile of `dY`,
//!
//! `dU[ξ][k][c] = Σ_tiles dM[ξ][k] · V[ξ][c]`, and `dw[k][c] = Gᵀ dU[k][c] G`.
//!
//! The sum over tiles is 36 gemms contracting over tiles, run on [`microkernel::tile_bt`] with
//! `dM` as the packed A (64 output channels per step) and `V` broadcast (6 input channels per
//! call), accumulating into `dU`. Small layers give each thread a range of cache-sized blocks
//! and its own `dU`, summed at the end; large ones transform many tiles at once and split the
//! 36 × (channel panels) gemms across threads, each owning its part of `dU`.

use rayon::prelude::*;

use super::{applies, filter, transforms, Plan, Source, LANES, XI};
use crate::im2col::ConvGeom;
use crate::microkernel::{self, BTile, Steps, BT_MR, BT_NR};
use crate::out::Out;
use crate::scratch::Scratch;

/// Weight gradient `dw (cout, cin, 3, 3)`, summed over the batch ([`applies`] must hold).
pub(crate) fn backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    assert!(
        applies(g),
        "winograd: not a 3×3 stride-1 convolution on AVX-512"
    );
    let plan = Plan::new(g);
    let pass = Pass {
        x: plan.input_source(x, g),
        dy: Source {
            x: dy,
            c: g.cout,
            h: g.ho,
            w: g.wo,
            pad: 0,
            wp: 4 * plan.tw,
        },
        g,
        plan,
    };
    let Plan {
        tiles,
        cp,
        kp,
        kpanels,
        tw,
        wp,
        ..
    } = pass.plan;
    let (xblocks, yblocks) = (pass.x.cblocks(), pass.dy.cblocks());
    let du_len = XI * kpanels * g.cin * BT_MR;
    let du = if pass.plan.blocked_schedule(g) {
        let (blocks, rows) = pass.plan.row_blocks(g.n);
        let np_max = rows * tw;
        let threads = rayon::current_num_threads().clamp(1, blocks.max(1));
        let partials: Vec<Vec<f32>> = (0..threads)
            .into_par_iter()
            .map(|th| {
                let mut du = vec![0f32; du_len];
                let mut xr = vec![0f32; xblocks * (4 * rows + 2) * wp * LANES];
                let mut yr = vec![0f32; yblocks * 4 * rows * 4 * tw * LANES];
                let mut v = vec![0f32; np_max * XI * cp];
                let mut dm = vec![0f32; np_max * XI * kp];
                for b in th * blocks / threads..(th + 1) * blocks / threads {
                    let (img, ty0, ny, _) = pass.plan.row_block(b, rows);
                    let np = ny * tw;
                    let (xn, yn) = (4 * ny + 2, 4 * ny);
                    let xr = &mut xr[..xblocks * xn * wp * LANES];
                    for (cb, dst) in xr.chunks_mut(xn * wp * LANES).enumerate() {
                        pass.x.rows(img, cb, 4 * ty0, dst);
                    }
                    let yr = &mut yr[..yblocks * yn * 4 * tw * LANES];
                    for (kb, dst) in yr.chunks_mut(yn * 4 * tw * LANES).enumerate() {
                        pass.dy.rows(img, kb, 4 * ty0, dst);
                    }
                    let (v, dm) = (&mut v[..np * XI * cp], &mut dm[..np * XI * kp]);
                    for (p, vt) in v.chunks_mut(XI * cp).enumerate() {
                        pass.plan.input(xr, xn, p / tw, p % tw, vt);
                    }
                    for p in 0..np {
                        pass.grad(yr, yn, (p / tw, p % tw), p, np, |off, stride, tile| {
                            for (xi, run) in tile.chunks(LANES).enumerate() {
                                dm[off + xi * stride..][..LANES].copy_from_slice(run);
                            }
                        });
                    }
                    for (j, duj) in du.chunks_mut(g.cin * BT_MR).enumerate() {
                        pass.accumulate(j / kpanels, j % kpanels, v, dm, duj);
                    }
                }
                du
            })
            .collect();
        let mut du = vec![0f32; du_len];
        du.par_chunks_mut(4096).enumerate().for_each(|(i, d)| {
            for p in &partials {
                for (d, s) in d.iter_mut().zip(&p[i * 4096..]) {
                    *d += s;
                }
            }
        });
        du
    } else {
        let xb = pass.x.blocked(g.n, pass.plan.hp);
        let yb = pass.dy.blocked(g.n, 4 * pass.plan.th);
        let yimage = yblocks * 4 * pass.plan.th * 4 * tw * LANES;
        let mut du = vec![0f32; du_len];
        let per_chunk = pass.plan.per_chunk();
        for t0 in (0..tiles).step_by(per_chunk) {
            let np = per_chunk.min(tiles - t0);
            let mut v = Scratch::take(np * XI * cp); // all written by the input transforms
            v.par_chunks_mut(XI * cp)
                .enumerate()
                .for_each(|(p, vt)| pass.plan.input_batch(&xb, t0 + p, vt));
            // Zeroed: output channels past `cout` in the last panel are never written.
            let mut dm = crate::storage::zeros(np * XI * kp);
            let out = Out::new(&mut dm);
            (0..np).into_par_iter().for_each(|p| {
                let (img, ty, tx) = pass.plan.tile(t0 + p);
                let rows = &yb[img * yimage..][..yimage];
                pass.grad(
                    rows,
                    4 * pass.plan.th,
                    (ty, tx),
                    p,
                    np,
                    |off, stride, tile| {
                        for (xi, run) in tile.chunks(LANES).enumerate() {
                            out.write(off + xi * stride, run);
                        }
                    },
                )
            });
            du.par_chunks_mut(g.cin * BT_MR)
                .enumerate()
                .for_each(|(j, duj)| pass.accumulate(j / kpanels, j % kpanels, &v, &dm, duj));
        }
        du
    };
    filter::backward(&du, g.cout, g.cin)
}

/// What the per-tile steps read.
struct Pass<'a> {
    g: &'a ConvGeom,
    plan: Plan,
    /// The input and `dY`, read as blocked rows.
    x: Source<'a>,
    dy: Source<'a>,
}

impl Pass<'_> {
    /// `dM` of the tile at tile row `ty`, column `tx` of `nrows` blocked rows of `dY`
    /// (`[k/16][nrows][4·tw][16]`), 16 channels at a time, handed to
    /// `sink(offset, ξ stride, [ξ][16])` with the offset of tile `p` in a `[ξ][k/64][tile][64]`
    /// buffer for `np` tiles.
    fn grad(
        &self,
        rows: &[f32],
        nrows: usize,
        (ty, tx): (usize, usize),
        p: usize,
        np: usize,
        mut sink: impl FnMut(usize, usize, &[f32]),
    ) {
        let tw = self.plan.tw;
        let mut tile = [0f32; XI * LANES];
        for kb in 0..self.dy.cblocks() {
            let src = &rows[((kb * nrows + 4 * ty) * 4 * tw + 4 * tx) * LANES..];
            transforms::grad_tile(src, 4 * tw * LANES, &mut tile, LANES);
            let (off, stride) = self.plan.panel_offset(np, p, kb * LANES);
            sink(off, stride, &tile);
        }
    }

    /// `dU[ξ]` for output channel panel `kt` (`du[c·64 + k]`) += the sum over the tiles of
    /// `v` (`[tile][ξ][cp]`) and `dm` (`[ξ][k/64][tile][64]`).
    fn accumulate(&self, xi: usize, kt: usize, v: &[f32], dm: &[f32], du: &mut [f32]) {
        let (cin, cp) = (self.g.cin, self.plan.cp);
        let np = v.len() / (XI * cp);
        let a = &dm[(xi * self.plan.kpanels + kt) * np * BT_MR..][..np * BT_MR];
        let steps: Vec<u32> = (0..np).map(|p| (p * XI * cp) as u32).collect();
        let data = &v[xi * cp..];
        for (c0, out) in (0..cin).step_by(BT_NR).zip(du.chunks_mut(BT_NR * BT_MR)) {
            let cols = BT_NR.min(cin - c0);
            let b = BTile {
                data,
                steps: Steps::new(&steps),
                noff: std::array::from_fn(|n| c0 + n.min(cols - 1)),
                cols,
            };
            microkernel::tile_bt(a, &b, out, true);
        }
    }
}
