//! `maxₘ ⟨zᵢ, axisₘ⟩`, the nearest-axis similarity of the CSI score (spec §6), in f64.
//!
//! Every product ⟨zᵢ, axisₘ⟩ is accumulated the same way whatever else is computed with it:
//! from zero, one fused multiply-add per feature, in the order d = 0, 1, …, D − 1. A score
//! therefore does not depend on how many images are scored together (the batch-size
//! invariance `dia eval` relies on), nor on the instruction set: the AVX-512 and AVX2 tiles and
//! the scalar loop (`f64::mul_add`, rounded once like the vector FMA) give the same bits. The
//! max over the axes does not depend on their order.
//!
//! The earlier version ran fixed-size blocks of 64 rows through a general f64 matrix product
//! and took the max of the 64 × M result; this one never writes the products (issue #17: the
//! `csi-score` benchmark ran at 0.25× PyTorch's f32 product on an AVX-512 Xeon).
//!
//! Layout: the axes are packed once ([`PackedAxes::new`]) into panels of [`LANES`] axes,
//! feature-major, so that one vector load holds one feature of 8 axes. A last partial panel
//! repeats the last axis, which leaves every max unchanged. The rows are taken a tile at a
//! time (8 rows × 24 axes in AVX-512's 32 registers, 6 × 8 in AVX2's 16), the axes in chunks of
//! [`CHUNK_PANELS`] panels that stay in L1 while all the rows of a task pass over them.

use rayon::prelude::*;

/// Axes per panel: one zmm (or two ymm) of f64.
const LANES: usize = 8;
/// Panels per cache chunk: one AVX-512 tile's 24 axes, 24 KiB at D = 128, which stay in L1
/// while all the rows of a task pass over them. (Chunks of 32 panels, read from L2, were 1.4×
/// slower on the `csi-score` benchmark: 21.2k against 29.0k images/s on a 2-vCPU Xeon.)
const CHUNK_PANELS: usize = 3;
/// Rows per parallel task; each task streams all the axes once per chunk pass.
const TASK_ROWS: usize = 128;

/// The unit axes of one shift, packed for [`PackedAxes::nearest`].
///
/// ```
/// use dia_eval::PackedAxes;
/// // Two axes in 2-D: (1, 0) and (0, 1).
/// let axes = PackedAxes::new(&[1.0, 0.0, 0.0, 1.0], 2);
/// assert_eq!(axes.nearest(&[3.0, -1.0, 0.5, 2.0]), vec![3.0, 2.0]);
/// ```
#[derive(Clone, Debug)]
pub struct PackedAxes {
    panels: Vec<f64>,
    m: usize,
    d: usize,
}

impl PackedAxes {
    /// Packs `m = rows.len() / d` axes of dimension `d`, row-major.
    pub fn new(rows: &[f64], d: usize) -> Self {
        let m = rows.len().checked_div(d).unwrap_or(0);
        let np = m.div_ceil(LANES);
        let mut panels = vec![0.0; np * d * LANES];
        for p in 0..np {
            for j in 0..LANES {
                // The padding lanes repeat the last axis: a duplicate cannot change a max.
                let a = (p * LANES + j).min(m - 1);
                for k in 0..d {
                    panels[(p * d + k) * LANES + j] = rows[a * d + k];
                }
            }
        }
        Self { panels, m, d }
    }

    /// The number of axes.
    pub fn len(&self) -> usize {
        self.m
    }

    /// Whether there are no axes.
    pub fn is_empty(&self) -> bool {
        self.m == 0
    }

    /// `maxₘ ⟨zᵢ, axisₘ⟩` for every whole row `zᵢ` of `z` (row-major, `d` columns); `−∞` for
    /// every row when there are no axes.
    pub fn nearest(&self, z: &[f64]) -> Vec<f64> {
        let d = self.d;
        if d == 0 {
            // Zero-dimensional features: every product is 0 (and there are no rows to tell).
            return Vec::new();
        }
        let n = z.len() / d;
        // Whole rows only: a trailing partial row is not a feature vector.
        let z = &z[..n * d];
        let mut out = vec![f64::NEG_INFINITY; n];
        if self.m == 0 {
            return out;
        }
        let isa = dia_nn::isa::cpu_isa();
        out.par_chunks_mut(TASK_ROWS)
            .zip(z.par_chunks(TASK_ROWS * d))
            .for_each(|(best, rows)| self.task(isa, rows, best));
        out
    }

    fn panel_count(&self) -> usize {
        self.m.div_ceil(LANES)
    }

    /// One task: rows `rows` against every axis, chunk by chunk.
    fn task(&self, isa: Option<dia_nn::isa::Isa>, rows: &[f64], best: &mut [f64]) {
        let d = self.d;
        let n = best.len();
        // Per row, the running max of each lane; reduced to one number at the end.
        let mut lanes = vec![[f64::NEG_INFINITY; LANES]; n];
        let np = self.panel_count();
        for c0 in (0..np).step_by(CHUNK_PANELS) {
            let c1 = (c0 + CHUNK_PANELS).min(np);
            match isa {
                #[cfg(target_arch = "x86_64")]
                Some(dia_nn::isa::Isa::Avx512) => {
                    // SAFETY: the CPU has AVX-512F (cpu_isa); rows and panels are in bounds.
                    unsafe { x86::chunk_avx512(&self.panels, d, c0, c1, rows, &mut lanes) }
                }
                #[cfg(target_arch = "x86_64")]
                Some(dia_nn::isa::Isa::Avx2) => {
                    // SAFETY: the CPU has AVX2 + FMA (cpu_isa); as above.
                    unsafe { x86::chunk_avx2(&self.panels, d, c0, c1, rows, &mut lanes) }
                }
                _ => chunk_scalar(&self.panels, d, c0, c1, rows, &mut lanes),
            }
        }
        for (b, l) in best.iter_mut().zip(&lanes) {
            *b = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
    }
}

/// The scalar version of the chunk loops in [`x86`]: the same products, the same bits.
fn chunk_scalar(
    panels: &[f64],
    d: usize,
    c0: usize,
    c1: usize,
    rows: &[f64],
    lanes: &mut [[f64; LANES]],
) {
    for (row, best) in rows.chunks(d).zip(lanes.iter_mut()) {
        for p in c0..c1 {
            let panel = &panels[p * d * LANES..(p + 1) * d * LANES];
            let mut acc = [0.0f64; LANES];
            for (k, &zk) in row.iter().enumerate() {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = zk.mul_add(panel[k * LANES + j], *a);
                }
            }
            for (b, a) in best.iter_mut().zip(acc) {
                *b = b.max(a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register tiles. Rows past the end of a task are the last row again (their results
    //! are dropped), so every tile is full.
    use std::arch::x86_64::*;

    use super::LANES;

    /// Row pointers of the tile starting at row `r0`, the last row repeated past the end.
    fn row_ptrs<const R: usize>(rows: &[f64], d: usize, r0: usize) -> [*const f64; R] {
        let n = rows.len() / d;
        std::array::from_fn(|r| rows[(r0 + r).min(n - 1) * d..].as_ptr())
    }

    /// Calls `tiles` once per tile of `R` rows with the rows' pointers and their running
    /// maxima (copied out of `lanes` and back), the loop both chunk functions share.
    #[inline(always)]
    fn row_tiles<const R: usize>(
        rows: &[f64],
        d: usize,
        lanes: &mut [[f64; LANES]],
        mut tiles: impl FnMut(&[*const f64; R], &mut [[f64; LANES]; R]),
    ) {
        let n = lanes.len();
        let mut scratch = [[f64::NEG_INFINITY; LANES]; R];
        for r0 in (0..n).step_by(R) {
            let len = R.min(n - r0);
            scratch[..len].copy_from_slice(&lanes[r0..r0 + len]);
            tiles(&row_ptrs::<R>(rows, d, r0), &mut scratch);
            lanes[r0..r0 + len].copy_from_slice(&scratch[..len]);
        }
    }

    /// AVX-512: tiles of 8 rows × `P` panels (up to 24 accumulators).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_avx512<const P: usize>(
        z: &[*const f64; 8],
        panels: *const f64,
        d: usize,
        lanes: &mut [[f64; LANES]],
    ) {
        let mut acc = [[_mm512_setzero_pd(); P]; 8];
        for k in 0..d {
            let a: [__m512d; P] =
                std::array::from_fn(|p| _mm512_loadu_pd(panels.add((p * d + k) * LANES)));
            for (r, row) in acc.iter_mut().enumerate() {
                let zk = _mm512_set1_pd(*z[r].add(k));
                for (acc, a) in row.iter_mut().zip(&a) {
                    *acc = _mm512_fmadd_pd(zk, *a, *acc);
                }
            }
        }
        for (row, best) in acc.iter().zip(lanes.iter_mut()) {
            let mut m = _mm512_loadu_pd(best.as_ptr());
            for a in row {
                m = _mm512_max_pd(m, *a);
            }
            _mm512_storeu_pd(best.as_mut_ptr(), m);
        }
    }

    /// Panels `c0..c1` for every row of `rows`, AVX-512.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chunk_avx512(
        panels: &[f64],
        d: usize,
        c0: usize,
        c1: usize,
        rows: &[f64],
        lanes: &mut [[f64; LANES]],
    ) {
        row_tiles::<8>(rows, d, lanes, |z, scratch| {
            let mut p = c0;
            while p < c1 {
                let base = panels.as_ptr().add(p * d * LANES);
                match c1 - p {
                    1 => tile_avx512::<1>(z, base, d, scratch),
                    2 => tile_avx512::<2>(z, base, d, scratch),
                    _ => tile_avx512::<3>(z, base, d, scratch),
                }
                p += (c1 - p).min(3);
            }
        });
    }

    /// AVX2: tiles of 6 rows × one panel (two ymm per row, 12 accumulators).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2(
        z: &[*const f64; 6],
        panel: *const f64,
        d: usize,
        lanes: &mut [[f64; LANES]],
    ) {
        let mut acc = [[_mm256_setzero_pd(); 2]; 6];
        for k in 0..d {
            let lo = _mm256_loadu_pd(panel.add(k * LANES));
            let hi = _mm256_loadu_pd(panel.add(k * LANES + 4));
            for (r, row) in acc.iter_mut().enumerate() {
                let zk = _mm256_set1_pd(*z[r].add(k));
                row[0] = _mm256_fmadd_pd(zk, lo, row[0]);
                row[1] = _mm256_fmadd_pd(zk, hi, row[1]);
            }
        }
        for (row, best) in acc.iter().zip(lanes.iter_mut()) {
            let b = best.as_mut_ptr();
            _mm256_storeu_pd(b, _mm256_max_pd(_mm256_loadu_pd(b), row[0]));
            _mm256_storeu_pd(b.add(4), _mm256_max_pd(_mm256_loadu_pd(b.add(4)), row[1]));
        }
    }

    /// Panels `c0..c1` for every row of `rows`, AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chunk_avx2(
        panels: &[f64],
        d: usize,
        c0: usize,
        c1: usize,
        rows: &[f64],
        lanes: &mut [[f64; LANES]],
    ) {
        row_tiles::<6>(rows, d, lanes, |z, scratch| {
            for p in c0..c1 {
                tile_avx2(z, panels.as_ptr().add(p * d * LANES), d, scratch);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dia_nn::isa::{detected_isa, set_isa_limit, Isa};
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// The definition, one pair at a time, in the documented order.
    fn naive(z: &[f64], axes: &[f64], d: usize) -> Vec<f64> {
        z.chunks(d)
            .map(|x| {
                axes.chunks(d)
                    .map(|a| x.iter().zip(a).fold(0.0, |s, (p, q)| p.mul_add(*q, s)))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }

    #[test]
    fn equals_the_definition_bit_for_bit_on_every_isa() {
        // Row counts and axis counts with partial tiles, panels and chunks.
        for &(n, m, d) in &[
            (1, 1, 1),
            (7, 9, 3),
            (13, 300, 17),
            (130, 777, 128),
            (6, 8, 5),
        ] {
            let (z, axes) = (random(n * d, 1), random(m * d, 2));
            let want = naive(&z, &axes, d);
            let packed = PackedAxes::new(&axes, d);
            let isas = [Some(Isa::Avx512), Some(Isa::Avx2), None];
            for isa in isas.into_iter().filter(|i| *i <= detected_isa()) {
                set_isa_limit(isa.unwrap_or(Isa::Avx2));
                let got = if isa.is_none() {
                    let mut lanes = vec![[f64::NEG_INFINITY; LANES]; n];
                    chunk_scalar(&packed.panels, d, 0, packed.panel_count(), &z, &mut lanes);
                    lanes
                        .iter()
                        .map(|l| l.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                        .collect()
                } else {
                    packed.nearest(&z)
                };
                assert_eq!(got, want, "n {n} m {m} d {d} isa {isa:?}");
            }
            set_isa_limit(Isa::Avx512);
        }
    }

    #[test]
    fn a_row_scores_the_same_alone_and_in_a_batch() {
        let d = 128;
        let (z, axes) = (random(200 * d, 3), random(1000 * d, 4));
        let packed = PackedAxes::new(&axes, d);
        let all = packed.nearest(&z);
        for (i, row) in z.chunks(d).enumerate().step_by(17) {
            assert_eq!(packed.nearest(row)[0], all[i], "row {i}");
        }
        assert!(PackedAxes::new(&[], 4)
            .nearest(&[1.0; 8])
            .iter()
            .all(|v| *v == f64::NEG_INFINITY));
    }
}
