//! The maximum of every max-pool window of one plane and where it is, as PyTorch's kernel
//! finds it: the first maximum in row-major scan order, a NaN beating any number and a later
//! NaN an earlier one (`val > max || isnan(val)`).
//!
//! Where the maximum is, is kept as its window offset `dy·k + dx` (a [`Code`]) rather than a
//! plane index: constant along a run of outputs, so the select that tracks it needs no index
//! arithmetic, and two bytes per output, so the training ops can keep it from the forward for
//! the backward (as PyTorch keeps its indices) instead of finding every maximum again.
//! [`Offsets`] turns a code back into a plane index.
//!
//! One output row at a time, the window offsets are visited in scan order (window row `dy`,
//! then column `dx`), each as one branch-free compare-and-select over the outputs whose column
//! is inside the plane, which the compiler vectorises. For stride `s` > 1 the plane is first
//! split, row by row, into its `s` column phases (columns `q`, `q + s`, ...), so that the
//! candidates of one `dx` for consecutive outputs are contiguous. The whole scan is compiled
//! for the best vector set the CPU has (issue #17: the earlier scan gathered the candidates
//! of every run and made a dispatched call per run of 16 outputs, 6 % of the 64-px ImageNet
//! step).

use super::MaxPoolConfig;

/// The offset `dy·k + dx` of a window's maximum inside its window (unclipped: `dy = 0` is the
/// row `oy·s − p`, which may be padding).
pub(crate) type Code = u16;

/// (H, W, Ho, Wo) of one plane and its pooled output.
pub(crate) type Dims = (usize, usize, usize, usize);

/// One window column `dx`: the outputs `[lo, hi)` whose column `ox·s + dx − p` is inside the
/// plane, and where the candidate of output `lo` is in a phase-split row.
#[derive(Clone, Copy)]
struct Run {
    dx: u32,
    lo: usize,
    hi: usize,
    src: usize,
}

/// Per-thread buffers of [`MaxPoolConfig::argmax`].
#[derive(Default)]
pub(crate) struct Scratch {
    phases: Vec<f32>,
    runs: Vec<Run>,
}

impl MaxPoolConfig {
    /// For each output of one plane (dims `(H, W, Ho, Wo)`, from [`MaxPoolConfig::dims`]), its
    /// window's first maximum in `best` and that maximum's [`Code`] in `code` (module
    /// documentation). A window with no value above −∞ keeps −∞ and the code of its first
    /// element inside the plane.
    pub(crate) fn argmax(
        &self,
        plane: &[f32],
        dims: Dims,
        code: &mut [u32],
        best: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let scan = Scan {
            cfg: self,
            plane,
            dims,
            code,
            best,
            scratch,
        };
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512(scan: Scan<'_>) {
                scan.run()
            }
            #[target_feature(enable = "avx2")]
            fn avx2(scan: Scan<'_>) {
                scan.run()
            }
            match crate::isa::cpu_isa() {
                // SAFETY: the CPU has the instructions (cpu_isa).
                Some(crate::isa::Isa::Avx512) => return unsafe { avx512(scan) },
                // SAFETY: as above.
                Some(crate::isa::Isa::Avx2) => return unsafe { avx2(scan) },
                None => {}
            }
        }
        scan.run()
    }
}

/// The arguments of [`MaxPoolConfig::argmax`], passed whole to each of its instruction-set
/// variants.
struct Scan<'a> {
    cfg: &'a MaxPoolConfig,
    plane: &'a [f32],
    dims: Dims,
    code: &'a mut [u32],
    best: &'a mut [f32],
    scratch: &'a mut Scratch,
}

impl Scan<'_> {
    /// [`MaxPoolConfig::argmax`], inlined into each of its instruction-set variants.
    #[inline(always)]
    fn run(self) {
        let Scan {
            cfg,
            plane,
            dims,
            code,
            best,
            scratch,
        } = self;
        let (h, w, _, wo) = dims;
        let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
        // Phase q of a row holds its columns q, q + s, ..., at `start[q]`: column c = i·s + q is
        // element i of phase q. With stride 1 the one phase is the row itself.
        let phase_len = |q: usize| if q < w { (w - q).div_ceil(s) } else { 0 };
        let phase_start = |q: usize| (0..q).map(phase_len).sum::<usize>();
        let src: &[f32] = if s == 1 {
            plane
        } else {
            let phases = &mut scratch.phases;
            phases.resize(plane.len(), 0.0);
            for (dst, row) in phases.chunks_exact_mut(w).zip(plane.chunks_exact(w)) {
                let mut at = 0;
                for q in 0..s.min(w) {
                    for (d, &v) in dst[at..].iter_mut().zip(row[q..].iter().step_by(s)) {
                        *d = v;
                    }
                    at += phase_len(q);
                }
            }
            phases
        };
        // Window column dx reads column ox·s + dx − p = (ox + j)·s + q of the plane.
        let runs = &mut scratch.runs;
        runs.clear();
        for dx in 0..k {
            let d = dx as isize - p as isize;
            let (j, q) = (d.div_euclid(s as isize), d.rem_euclid(s as isize) as usize);
            let lo = (-j).max(0) as usize;
            let hi = (wo as isize).min(phase_len(q) as isize - j);
            if (lo as isize) < hi {
                runs.push(Run {
                    dx: dx as u32,
                    lo,
                    hi: hi as usize,
                    src: phase_start(q) + (lo as isize + j) as usize,
                });
            }
        }
        let k32 = k as u32;
        for (oy, (code, best)) in code
            .chunks_exact_mut(wo)
            .zip(best.chunks_exact_mut(wo))
            .enumerate()
        {
            // The window's rows, unclipped from `top`, clipped to [ylo, yhi).
            let top = (oy * s) as isize - p as isize;
            let ylo = top.max(0) as usize;
            let yhi = ((top + k as isize) as usize).min(h);
            // Until a value beats −∞, the window's first element inside the plane is its argmax.
            let dy0 = (ylo as isize - top) as u32 * k32;
            for (ox, (a, b)) in code.iter_mut().zip(best.iter_mut()).enumerate() {
                *a = dy0 + p.saturating_sub(ox * s) as u32;
                *b = f32::NEG_INFINITY;
            }
            for iy in ylo..yhi {
                let row = &src[iy * w..][..w];
                let dy = (iy as isize - top) as u32 * k32;
                for run in runs.iter() {
                    let n = run.hi - run.lo;
                    select(
                        &mut best[run.lo..run.hi],
                        &mut code[run.lo..run.hi],
                        &row[run.src..][..n],
                        dy + run.dx,
                    );
                }
            }
        }
    }
}

/// `best[j], code[j] = cand[j], c` where `cand[j]` beats `best[j]` (greater, or a NaN): one
/// window offset of a run of outputs.
#[inline(always)]
fn select(best: &mut [f32], code: &mut [u32], cand: &[f32], c: u32) {
    for ((b, a), &v) in best.iter_mut().zip(code.iter_mut()).zip(cand) {
        let take = (v > *b) | v.is_nan();
        *b = if take { v } else { *b };
        *a = if take { c } else { *a };
    }
}

/// The plane index of each [`Code`] relative to its window's unclipped top-left corner, for
/// one plane's dims: output `(oy, ox)`'s maximum is at `(oy·W + ox)·s + offsets[code]`.
pub(crate) struct Offsets {
    offsets: Vec<isize>,
    stride: usize,
    w: usize,
    wo: usize,
}

impl Offsets {
    pub(crate) fn new(cfg: &MaxPoolConfig, dims: Dims) -> Self {
        let (k, p, w) = (cfg.kernel as isize, cfg.padding as isize, dims.1 as isize);
        Offsets {
            offsets: (0..k * k).map(|c| (c / k - p) * w + c % k - p).collect(),
            stride: cfg.stride,
            w: dims.1,
            wo: dims.3,
        }
    }

    /// The plane index of each output's maximum, from the codes of one pooled plane (in
    /// order, row-major).
    pub(crate) fn indices<'a>(&'a self, codes: &'a [Code]) -> impl Iterator<Item = usize> + 'a {
        codes
            .chunks_exact(self.wo)
            .enumerate()
            .flat_map(move |(oy, row)| {
                let corner = (oy * self.w * self.stride) as isize;
                row.iter().enumerate().map(move |(ox, &c)| {
                    (corner + (ox * self.stride) as isize + self.offsets[c as usize]) as usize
                })
            })
    }
}
