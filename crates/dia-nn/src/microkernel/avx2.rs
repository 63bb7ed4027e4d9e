//! The AVX2 + FMA versions of the two register tiles (issue #17): the same tiles, the same
//! operands and the same results as the AVX-512 ones, for x86-64 CPUs without AVX-512 (most
//! laptops, AMD before Zen 4, Intel client cores).
//!
//! AVX2 has 16 ymm registers of 8 lanes, against AVX-512's 32 of 16, so a whole 48 × 8 or
//! 64 × 6 tile (48 zmm-halves of accumulators) cannot stay in registers. Each tile is computed
//! in passes over its steps instead, each pass a block that fits the register file with room
//! to spare:
//! - [`tile`] (48 × 8): six 16 × 4 blocks, 8 accumulators, 2 A vectors, one broadcast (and two
//!   masks where lanes are partial);
//! - [`tile_bt`] (64 × 6): four 16 × 6 blocks, 12 accumulators, 2 A vectors, one broadcast.
//!
//! Blocks of exactly 16 registers (24 × 4 and 32 × 3, the first version) left LLVM one short:
//! it kept an accumulator on the stack, and the store-to-load round trip in that chain held
//! both tiles to 42–45 GFLOP/s on one Zen 3 core, against 80–90 GFLOP/s now (`tile_speed`,
//! issue #17). The steps are taken [`CHUNK`] at a time, all passes over one chunk before the
//! next (the passes after the first add to what the earlier chunks left in `out`), so that the
//! passes after the first read their operands from L1: a whole 3×3 tile over 64 channels
//! reads 110 KiB of A.

use std::arch::x86_64::*;

use super::{ATile, BTile, BT_MR, BT_NR, MR, MV, NR};

/// Steps per chunk: 64 steps of a tile read 12 KiB of A (16 KiB for `tile_bt`) and 2 KiB of B.
const CHUNK: usize = 64;

/// The mask of the first `n` of 8 lanes, for `_mm256_maskload_ps` (which reads nothing, and
/// cannot fault, outside the mask).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// One `8·H` × `C` block of [`tile`]: A half-vectors `h0..h0 + H` (8 rows each), columns
/// `c0..c0 + C` (16 × 4: see the module documentation for why not larger).
// The block's position (h0, c0, first) is three scalars: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_block<const MASKED: bool, const H: usize, const C: usize>(
    p: &[*const f32; 2 * MV],
    masks: &[__m256i; 2 * MV],
    koff: &[u32],
    b: *const f32,
    h0: usize,
    c0: usize,
    first: bool,
    out: *mut f32,
) {
    let mut acc = [[_mm256_setzero_ps(); H]; C];
    if !first {
        for (n, row) in acc.iter_mut().enumerate() {
            for (v, r) in row.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(out.add((c0 + n) * MR + 8 * (h0 + v)));
            }
        }
    }
    let mut bp = b.add(c0);
    for &k in koff {
        let k = k as usize;
        let av: [__m256; H] = std::array::from_fn(|v| {
            let ptr = p[h0 + v].wrapping_add(k);
            if MASKED {
                _mm256_maskload_ps(ptr, masks[h0 + v])
            } else {
                _mm256_loadu_ps(ptr)
            }
        });
        for (n, row) in acc.iter_mut().enumerate() {
            let bn = _mm256_broadcast_ss(&*bp.add(n));
            for v in 0..H {
                row[v] = _mm256_fmadd_ps(av[v], bn, row[v]);
            }
        }
        bp = bp.add(NR);
    }
    for (n, row) in acc.iter().enumerate() {
        for (v, r) in row.iter().enumerate() {
            _mm256_storeu_ps(out.add((c0 + n) * MR + 8 * (h0 + v)), *r);
        }
    }
}

/// [`super::tile`] on AVX2 + FMA (the caller has checked the bounds).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile(a: &ATile<'_>, b: &[f32], out: &mut [f32; MR * NR]) {
    let base = a.data.as_ptr();
    // Half-vector h is lanes 8(h % 2).. of vector h / 2.
    let lanes: [usize; 2 * MV] =
        std::array::from_fn(|h| a.lanes[h / 2].saturating_sub(8 * (h % 2)).min(8));
    let p: [*const f32; 2 * MV] =
        std::array::from_fn(|h| base.wrapping_add(a.voff[h / 2] + 8 * (h % 2)));
    let masks: [__m256i; 2 * MV] = std::array::from_fn(|h| lane_mask(lanes[h]));
    let o = out.as_mut_ptr();
    if a.koff.0.is_empty() {
        out.fill(0.0);
        return;
    }
    for (c, koff) in a.koff.0.chunks(CHUNK).enumerate() {
        let bc = b.as_ptr().add(c * CHUNK * NR);
        for h0 in [0, 2, 4] {
            let full = lanes[h0..h0 + 2].iter().all(|&l| l == 8);
            for c0 in [0, 4] {
                if full {
                    tile_block::<false, 2, 4>(&p, &masks, koff, bc, h0, c0, c == 0, o);
                } else {
                    tile_block::<true, 2, 4>(&p, &masks, koff, bc, h0, c0, c == 0, o);
                }
            }
        }
    }
}

/// One 16-row × `N`-column block of [`tile_bt`] over one chunk of steps: rows `r0..r0 + 16`,
/// all `N` columns at once (the classic AVX2 gemm block): 12 accumulators, 2 A vectors and the
/// broadcast, 15 of the 16 ymm registers. `N` is 6, or 3 when no more columns are wanted;
/// only the first `cols` are loaded and stored.
// The block's position (r0, load, cols) is three scalars: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bt_block<const N: usize>(
    a: *const f32,
    p: &[*const f32; BT_NR],
    steps: &[u32],
    r0: usize,
    load: bool,
    cols: usize,
    o: *mut f32,
) {
    let cols = cols.min(N);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    if load {
        for (n, row) in acc.iter_mut().enumerate().take(cols) {
            for (v, r) in row.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(o.add(n * BT_MR + r0 + 8 * v));
            }
        }
    }
    let pn: [*const f32; N] = std::array::from_fn(|n| p[n]);
    let mut ap = a.add(r0);
    for &s in steps {
        let s = s as usize;
        let a0 = _mm256_loadu_ps(ap);
        let a1 = _mm256_loadu_ps(ap.add(8));
        for (n, row) in acc.iter_mut().enumerate() {
            let bn = _mm256_broadcast_ss(&*pn[n].add(s));
            row[0] = _mm256_fmadd_ps(a0, bn, row[0]);
            row[1] = _mm256_fmadd_ps(a1, bn, row[1]);
        }
        ap = ap.add(BT_MR);
    }
    for (n, row) in acc.iter().enumerate().take(cols) {
        for (v, r) in row.iter().enumerate() {
            _mm256_storeu_ps(o.add(n * BT_MR + r0 + 8 * v), *r);
        }
    }
}

/// [`super::tile_bt`] on AVX2 + FMA (the caller has checked the bounds): four passes of 16
/// rows × 6 columns ([`bt_block`]) over each chunk of steps.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_bt(a: &[f32], b: &BTile<'_>, out: &mut [f32], accumulate: bool) {
    let base = b.data.as_ptr();
    let p: [*const f32; BT_NR] =
        std::array::from_fn(|n| base.add(b.noff[if n < b.cols { n } else { 0 }]));
    let o = out.as_mut_ptr();
    let steps = b.steps.0;
    if steps.is_empty() && !accumulate {
        out[..b.cols * BT_MR].fill(0.0);
        return;
    }
    for (c, chunk) in steps.chunks(CHUNK).enumerate() {
        let a = a.as_ptr().add(c * CHUNK * BT_MR);
        let load = accumulate || c > 0;
        for r0 in (0..BT_MR).step_by(16) {
            if b.cols > 3 {
                bt_block::<6>(a, &p, chunk, r0, load, b.cols, o);
            } else {
                bt_block::<3>(a, &p, chunk, r0, load, b.cols, o);
            }
        }
    }
}
