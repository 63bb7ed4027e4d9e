//! The AVX-512 register tiles behind the convolutions (issue #3).
//!
//! A tile is a block of `C = A · B` held in 24 zmm accumulators over a run of contraction
//! steps: vectors of 16 lanes down M, broadcast columns along N. What makes the two kernels
//! here more than gemm micro-kernels is that one operand is *addressed* rather than packed, so
//! the convolutions never write an im2col matrix (see `fastconv`):
//!
//! - [`tile`] (48 × 8): A is addressed — step `s` loads vector `v` from `data[koff[s] +
//!   voff[v]..]`. With `koff` = the offsets of the kernel taps in a zero-padded input and
//!   `voff` = three output-row runs, A is read straight out of the feature map. B is a packed
//!   panel (8 floats per step).
//! - [`tile_bt`] (64 × 6): B is addressed — column `n` of step `s` is broadcast from
//!   `data[steps[s] + noff[n]]` (taps × pixel windows, or pixel windows × taps). A is a packed
//!   panel (64 floats per step).
//!
//! Step tables are sorted ([`Steps`]) so a call checks its bounds in O(1) before any unsafe
//! load. x86-64 with AVX-512F runs them as written here; with AVX2 + FMA only, or when
//! `DIA_ISA=avx2` holds the kernels there ([`crate::isa`]), the same tiles run in passes of
//! register-sized blocks (`avx2`). [`available`] says whether either can run, and the convolutions fall back
//! to the portable `gemm` path when neither can.

#[cfg(target_arch = "x86_64")]
mod avx2;

use crate::isa::{cpu_isa, detected_isa, Isa};

/// Vectors (of 16 lanes) per tile along M.
pub(crate) const MV: usize = 3;
/// Tile rows (M).
pub(crate) const MR: usize = 16 * MV;
/// Tile columns (N).
pub(crate) const NR: usize = 8;
/// Vectors per tile along M for [`tile_bt`]: 64 rows × 6 columns, so that 64, 128, 256 and
/// 512 channels fill whole tiles.
pub(crate) const BT_MV: usize = 4;
/// Tile rows of [`tile_bt`].
pub(crate) const BT_MR: usize = 16 * BT_MV;
/// Tile columns of [`tile_bt`].
pub(crate) const BT_NR: usize = 6;

/// Whether the tiles can run here (AVX-512, or AVX2 + FMA, within the `DIA_ISA` limit): the
/// hardware condition of every kernel here. Whether the tiles are *used* is the kernel
/// policy's (`KernelPolicy::Gemm` turns them off).
pub(crate) fn available() -> bool {
    cpu_isa().is_some()
}

/// Whether the AVX-512 kernels run (else, where [`available`], their AVX2 twins do).
pub(crate) fn avx512() -> bool {
    cpu_isa() == Some(Isa::Avx512)
}

/// Step offsets in non-decreasing order, so that the last one is the largest and a tile's
/// bounds check costs O(1) per call instead of a scan.
#[derive(Clone, Copy)]
pub(crate) struct Steps<'a>(&'a [u32]);

impl<'a> Steps<'a> {
    /// Panics unless `offs` is sorted.
    pub fn new(offs: &'a [u32]) -> Self {
        assert!(
            offs.windows(2).all(|w| w[0] <= w[1]),
            "microkernel: step offsets must be sorted"
        );
        Self(offs)
    }

    fn len(self) -> usize {
        self.0.len()
    }

    fn max(self) -> usize {
        self.0.last().copied().unwrap_or(0) as usize
    }
}

/// Where a tile reads A: vector `v` of step `s` is the `lanes[v]` floats at
/// `data[koff[s] + voff[v]..]` (lanes beyond are zero; a vector with 0 lanes is all zero).
pub(crate) struct ATile<'a> {
    pub data: &'a [f32],
    pub koff: Steps<'a>,
    pub voff: [usize; MV],
    pub lanes: [usize; MV],
}

/// `tile[n·48 + m] = Σ_s A[s][m] · b[s·8 + n]` over the steps of `a.koff`, B packed.
///
/// Panics if a load would leave its slice or the panel is short.
pub(crate) fn tile(a: &ATile<'_>, b: &[f32], out: &mut [f32; MR * NR]) {
    let isa = cpu_isa().expect("microkernel: neither AVX-512 nor AVX2 is available");
    tile_on(isa, a, b, out)
}

/// [`tile`] with the instruction set `isa` (which this CPU must have).
fn tile_on(isa: Isa, a: &ATile<'_>, b: &[f32], out: &mut [f32; MR * NR]) {
    let steps = a.koff.len();
    let kmax = a.koff.max();
    for v in 0..MV {
        assert!(
            a.lanes[v] <= 16 && (a.lanes[v] == 0 || kmax + a.voff[v] + a.lanes[v] <= a.data.len()),
            "microkernel: A out of bounds"
        );
    }
    assert!(b.len() >= steps * NR, "microkernel: B panel too short");
    assert!(
        detected_isa() >= Some(isa),
        "microkernel: {isa} is not available"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has `isa` (detected); every address formed below is checked above:
    // A loads are masked to `lanes` floats inside `data`, B reads `steps·8` floats.
    unsafe {
        match isa {
            Isa::Avx512 => x86::tile(a, b, out),
            Isa::Avx2 => avx2::tile(a, b, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("{isa} on a CPU that is not x86-64")
}

/// Where a tile reads B: column `n` of step `s` is `data[steps[s] + noff[n]]`; columns from
/// `cols` on are not wanted (they repeat column 0, and their results are to be ignored).
pub(crate) struct BTile<'a> {
    pub data: &'a [f32],
    pub steps: Steps<'a>,
    pub noff: [usize; BT_NR],
    pub cols: usize,
}

/// `out[n·64 + m] = Σ_s a[s·64 + m] · B[s][n]` over the steps of `b.steps`, A packed, for the
/// `b.cols` wanted columns (`out` holds at least `64·cols` floats; nothing past is written).
/// With `accumulate` the sums are added to what `out` holds.
///
/// Panics if a load would leave its slice, the panel is short or `out` is.
pub(crate) fn tile_bt(a: &[f32], b: &BTile<'_>, out: &mut [f32], accumulate: bool) {
    let isa = cpu_isa().expect("microkernel: neither AVX-512 nor AVX2 is available");
    tile_bt_on(isa, a, b, out, accumulate)
}

/// [`tile_bt`] with the instruction set `isa` (which this CPU must have).
fn tile_bt_on(isa: Isa, a: &[f32], b: &BTile<'_>, out: &mut [f32], accumulate: bool) {
    let smax = b.steps.max();
    assert!(
        (1..=BT_NR).contains(&b.cols) && b.noff[..b.cols].iter().all(|&o| smax + o < b.data.len()),
        "microkernel: B out of bounds"
    );
    assert!(
        a.len() >= b.steps.len() * BT_MR,
        "microkernel: A panel too short"
    );
    assert!(out.len() >= b.cols * BT_MR, "microkernel: output too short");
    assert!(
        detected_isa() >= Some(isa),
        "microkernel: {isa} is not available"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has `isa`; A reads `steps·64` floats of `a`, B reads only the checked
    // columns (the others alias column 0), stores go to the first `cols·64` floats of `out`.
    unsafe {
        match isa {
            Isa::Avx512 => x86::tile_bt(a, b, out, accumulate),
            Isa::Avx2 => avx2::tile_bt(a, b, out, accumulate),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("{isa} on a CPU that is not x86-64")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ATile, BTile, BT_MR, BT_MV, BT_NR, MR, MV, NR};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(a: &ATile<'_>, b: &[f32], out: &mut [f32; MR * NR]) {
        let base = a.data.as_ptr();
        let p: [*const f32; MV] = std::array::from_fn(|v| base.wrapping_add(a.voff[v]));
        let m: [__mmask16; MV] = std::array::from_fn(|v| ((1u32 << a.lanes[v]) - 1) as __mmask16);
        let mut acc = [[_mm512_setzero_ps(); MV]; NR];
        let mut bp = b.as_ptr();
        for &k in a.koff.0 {
            let k = k as usize;
            // Masked loads read nothing outside the lanes (no fault, no out-of-bounds access).
            let av: [__m512; MV] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(m[v], p[v].wrapping_add(k)));
            for (n, row) in acc.iter_mut().enumerate() {
                let bn = _mm512_set1_ps(*bp.add(n));
                for v in 0..MV {
                    row[v] = _mm512_fmadd_ps(av[v], bn, row[v]);
                }
            }
            bp = bp.add(NR);
        }
        let o = out.as_mut_ptr();
        for (n, row) in acc.iter().enumerate() {
            for (v, r) in row.iter().enumerate() {
                _mm512_storeu_ps(o.add(n * MR + 16 * v), *r);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_bt(a: &[f32], b: &BTile<'_>, out: &mut [f32], accumulate: bool) {
        let base = b.data.as_ptr();
        let p: [*const f32; BT_NR] =
            std::array::from_fn(|n| base.add(b.noff[if n < b.cols { n } else { 0 }]));
        let o = out.as_mut_ptr();
        let mut acc = [[_mm512_setzero_ps(); BT_MV]; BT_NR];
        if accumulate {
            for (n, row) in acc.iter_mut().enumerate().take(b.cols) {
                for (v, r) in row.iter_mut().enumerate() {
                    *r = _mm512_loadu_ps(o.add(n * BT_MR + 16 * v));
                }
            }
        }
        let mut ap = a.as_ptr();
        for &s in b.steps.0 {
            let s = s as usize;
            let av: [__m512; BT_MV] = std::array::from_fn(|v| _mm512_loadu_ps(ap.add(16 * v)));
            for (n, row) in acc.iter_mut().enumerate() {
                let bn = _mm512_set1_ps(*p[n].add(s));
                for v in 0..BT_MV {
                    row[v] = _mm512_fmadd_ps(av[v], bn, row[v]);
                }
            }
            ap = ap.add(BT_MR);
        }
        for (n, row) in acc.iter().enumerate().take(b.cols) {
            for (v, r) in row.iter().enumerate() {
                _mm512_storeu_ps(o.add(n * BT_MR + 16 * v), *r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction sets this CPU has, each of which the tiles are tested on.
    fn isas() -> Vec<Isa> {
        [Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| detected_isa() >= Some(i))
            .collect()
    }

    #[test]
    fn tile_is_the_product_over_the_addressed_vectors() {
        for isa in isas() {
            // 150 steps: three of the AVX2 passes' chunks, the last one short.
            for steps in [5, 150] {
                tile_product(isa, steps, [16, 9, 0]);
                tile_product(isa, steps, [16, 16, 16]); // the AVX2 passes' unmasked loads
                tile_product(isa, steps, [3, 16, 12]);
            }
        }
    }

    fn tile_product(isa: Isa, steps: usize, lanes: [usize; MV]) {
        let data: Vec<f32> = (0..steps * 7 + 300)
            .map(|i| (i % 13) as f32 - 6.0)
            .collect();
        let koff: Vec<u32> = (0..steps as u32).map(|s| s * 7).collect();
        let voff = [0, 100, 250];
        let b: Vec<f32> = (0..steps * NR).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut out = [0f32; MR * NR];
        tile_on(
            isa,
            &ATile {
                data: &data,
                koff: Steps::new(&koff),
                voff,
                lanes,
            },
            &b,
            &mut out,
        );
        for n in 0..NR {
            for v in 0..MV {
                for l in 0..16 {
                    let want: f32 = if l < lanes[v] {
                        (0..steps)
                            .map(|s| data[koff[s] as usize + voff[v] + l] * b[s * NR + n])
                            .sum()
                    } else {
                        0.0
                    };
                    let at = format!("{isa} steps {steps} n {n} v {v} lane {l}");
                    assert_eq!(out[n * MR + 16 * v + l], want, "{at}");
                }
            }
        }
    }

    #[test]
    fn tile_bt_is_the_product_with_addressed_columns() {
        for isa in isas() {
            for cols in [5, 1, 3, 6] {
                for accumulate in [false, true] {
                    tile_bt_product(isa, vec![0, 3, 3, 10], cols, accumulate);
                    // Three of the AVX2 passes' chunks.
                    let long = (0..150).map(|s| s / 2).collect();
                    tile_bt_product(isa, long, cols, accumulate);
                }
            }
        }
    }

    fn tile_bt_product(isa: Isa, steps: Vec<u32>, cols: usize, accumulate: bool) {
        let data: Vec<f32> = (0..200).map(|i| (i % 9) as f32 - 4.0).collect();
        let a: Vec<f32> = (0..steps.len() * BT_MR)
            .map(|i| (i % 7) as f32 * 0.25)
            .collect();
        let noff = [0, 1, 5, 20, 40, 53];
        let mut out = [-7f32; BT_MR * BT_NR];
        let b = BTile {
            data: &data,
            steps: Steps::new(&steps),
            noff,
            cols,
        };
        tile_bt_on(isa, &a, &b, &mut out, accumulate);
        let start = if accumulate { -7.0 } else { 0.0 };
        for n in 0..cols {
            for m in 0..BT_MR {
                let want: f32 = (0..steps.len())
                    .map(|s| a[s * BT_MR + m] * data[steps[s] as usize + noff[n]])
                    .sum::<f32>()
                    + start;
                assert_eq!(out[n * BT_MR + m], want, "{isa} cols {cols} n {n} m {m}");
            }
        }
        // Columns past `cols` are not written.
        assert!(out[cols * BT_MR..].iter().all(|&v| v == -7.0));
    }

    #[test]
    #[should_panic(expected = "sorted")]
    fn unsorted_steps_are_refused() {
        Steps::new(&[0, 5, 4]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_load_past_the_data_panics() {
        if !available() {
            panic!("out of bounds (no vector tiles on this CPU)");
        }
        let data = vec![0f32; 20];
        let mut out = [0f32; MR * NR];
        let a = ATile {
            data: &data,
            koff: Steps::new(&[0, 5]),
            voff: [0, 0, 0],
            lanes: [16, 0, 0],
        };
        tile(&a, &[0.0; 2 * NR], &mut out);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Single-thread throughput of the tile on L1-resident operands (development aid):
    /// `cargo test --release -p dia-nn --lib -- --ignored --nocapture tile_speed`.
    #[test]
    #[ignore]
    fn tile_speed() {
        if !available() {
            return;
        }
        for (name, koff, voff) in [
            (
                "packed",
                (0..256u32).map(|s| s * 48).collect::<Vec<_>>(),
                [0, 16, 32],
            ),
            (
                "direct",
                (0..256u32)
                    .map(|s| (s / 9) * 40 + (s % 3) + (s / 3 % 3) * 12)
                    .collect(),
                [1, 17, 35],
            ),
        ] {
            let data = vec![0.5f32; 256 * 48 + 64];
            let b = vec![0.25f32; 256 * NR];
            let mut out = [0f32; MR * NR];
            let a = ATile {
                data: &data,
                koff: Steps::new(&koff),
                voff,
                lanes: [16; 3],
            };
            let reps = 20000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                tile(&a, &b, &mut out);
                std::hint::black_box(&out);
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{name}: {:.1} GFLOP/s",
                (reps * 256 * MR * NR * 2) as f64 / s / 1e9
            );
        }
        // tile_bt: 256 steps of a packed panel, six columns broadcast from windows 3 apart.
        let steps: Vec<u32> = (0..256u32).map(|s| s * 3).collect();
        let data = vec![0.5f32; 256 * 3 + 64];
        let a = vec![0.25f32; 256 * BT_MR];
        let mut out = [0f32; BT_MR * BT_NR];
        let b = BTile {
            data: &data,
            steps: Steps::new(&steps),
            noff: [0, 1, 2, 20, 21, 22],
            cols: BT_NR,
        };
        let reps = 20000;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            tile_bt(&a, &b, &mut out, false);
            std::hint::black_box(&out);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "tile_bt: {:.1} GFLOP/s",
            (reps * 256 * BT_MR * BT_NR * 2) as f64 / s / 1e9
        );
    }
}
