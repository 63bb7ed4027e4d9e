//! Max pooling with a backward for any kernel, stride and padding (padding counts as −∞, as in
//! PyTorch). candle 0.11 has no backward for the ResNet ImageNet stem's 3×3 / stride 2 /
//! padding 1 pool (performance-baseline §3); this op routes each output gradient to the first
//! maximum of its window, as PyTorch's saved indices do.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{cpu_slice, with_f32};

/// Kernel, stride and padding of a square max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolConfig {
    /// Window size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side (−∞).
    pub padding: usize,
}

impl MaxPoolConfig {
    /// The ResNet ImageNet stem: 3×3, stride 2, padding 1.
    pub const RESNET_STEM: MaxPoolConfig = MaxPoolConfig {
        kernel: 3,
        stride: 2,
        padding: 1,
    };

    fn out(&self, size: usize) -> Result<usize> {
        if self.kernel == 0 || self.stride == 0 || 2 * self.padding > self.kernel {
            bail!("max pool: invalid config {self:?} (padding at most half the kernel)")
        }
        if size + 2 * self.padding < self.kernel {
            bail!("max pool: input of size {size} is smaller than the {self:?} window")
        }
        Ok((size + 2 * self.padding - self.kernel) / self.stride + 1)
    }

    /// For each output position of one plane, the input index of the first maximum of its
    /// window (row-major scan; a NaN wins over any number, and the last NaN over earlier
    /// ones, as in PyTorch's kernel), and that maximum.
    ///
    /// One output row at a time, the window offsets are visited in scan order (input row,
    /// then column offset `dx`), each as one pass over the outputs whose column is inside the
    /// plane: the candidates are gathered to a contiguous run, then a branch-free
    /// compare-and-select over it, which the compiler vectorises. (The earlier scan, window by
    /// window with a branch per element, was 12 % of a 224-px ImageNet-stem training step;
    /// issue #17.)
    pub(crate) fn argmax(
        &self,
        plane: &[f32],
        dims: (usize, usize, usize, usize),
        out: &mut [u32],
        best: &mut [f32],
    ) {
        let (h, w, _, wo) = dims;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // [lo, hi) of the window of output `o` along an axis of `size`, clipped.
        let span = |o: usize, size: usize| {
            let start = o * s;
            (
                start.saturating_sub(p),
                (start + k).saturating_sub(p).min(size),
            )
        };
        for (oy, (arg, best)) in out
            .chunks_exact_mut(wo)
            .zip(best.chunks_exact_mut(wo))
            .enumerate()
        {
            let (ylo, yhi) = span(oy, h);
            // Until a value beats −∞, the first element of the window is its argmax.
            for (ox, (a, b)) in arg.iter_mut().zip(best.iter_mut()).enumerate() {
                *a = (ylo * w + span(ox, w).0) as u32;
                *b = f32::NEG_INFINITY;
            }
            for iy in ylo..yhi {
                let row = &plane[iy * w..][..w];
                for dx in 0..k {
                    // The outputs whose column ox·s + dx − p lies in [0, w).
                    if w + p < dx + 1 {
                        continue;
                    }
                    let olo = p.saturating_sub(dx).div_ceil(s);
                    let ohi = wo.min((w + p - dx - 1) / s + 1);
                    if olo >= ohi {
                        continue;
                    }
                    // The candidates, gathered to a contiguous run (a strided load does not
                    // vectorise), then compared in runs of CHUNK.
                    const CHUNK: usize = 64;
                    let mut cand = [0f32; CHUNK];
                    let src = &row[olo * s + dx - p..];
                    for o0 in (olo..ohi).step_by(CHUNK) {
                        let len = CHUNK.min(ohi - o0);
                        let from = src[(o0 - olo) * s..].iter().step_by(s);
                        for (c, x) in cand[..len].iter_mut().zip(from) {
                            *c = *x;
                        }
                        let ix = (iy * w + o0 * s + dx - p) as u32;
                        let run = o0..o0 + len;
                        select_run(
                            &mut best[run.clone()],
                            &mut arg[run],
                            &cand[..len],
                            ix,
                            s as u32,
                        );
                    }
                }
            }
        }
    }

    /// The output size and a check that plane indices fit the `u32` of [`Self::argmax`].
    pub(crate) fn dims(&self, h: usize, w: usize) -> Result<(usize, usize, usize, usize)> {
        if h * w > u32::MAX as usize {
            bail!("max pool: a {h}x{w} plane is too large")
        }
        Ok((h, w, self.out(h)?, self.out(w)?))
    }
}

/// `best[j], arg[j] = cand[j], ix + j·step` where `cand[j]` beats `best[j]` (greater, or a
/// NaN): one offset of every window of a run of outputs. Compiled for the best vector set the
/// CPU has (the same body: the compiler vectorises the select, with masks on AVX-512; for the
/// x86-64 baseline it does not, because of the mixed f32 / u32 widths).
fn select_run(best: &mut [f32], arg: &mut [u32], cand: &[f32], ix: u32, step: u32) {
    #[inline(always)]
    fn body(best: &mut [f32], arg: &mut [u32], cand: &[f32], ix: u32, step: u32) {
        let mut ix = ix;
        for ((b, a), &v) in best.iter_mut().zip(arg.iter_mut()).zip(cand) {
            let take = (v > *b) | v.is_nan();
            *b = if take { v } else { *b };
            *a = if take { ix } else { *a };
            ix = ix.wrapping_add(step);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(best: &mut [f32], arg: &mut [u32], cand: &[f32], ix: u32, step: u32) {
            body(best, arg, cand, ix, step)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(best: &mut [f32], arg: &mut [u32], cand: &[f32], ix: u32, step: u32) {
            body(best, arg, cand, ix, step)
        }
        match crate::isa::cpu_isa() {
            // SAFETY: the CPU has the instructions (cpu_isa).
            Some(crate::isa::Isa::Avx512) => return unsafe { avx512(best, arg, cand, ix, step) },
            // SAFETY: as above.
            Some(crate::isa::Isa::Avx2) => return unsafe { avx2(best, arg, cand, ix, step) },
            None => {}
        }
    }
    body(best, arg, cand, ix, step)
}

struct MaxPool2d(MaxPoolConfig);

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "dia-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "max pool")?;
        let [n, c, h, w] = *l.dims() else {
            bail!("max pool: expected (N, C, H, W), got {:?}", l.dims())
        };
        let dims = self.0.dims(h, w)?;
        let (ho, wo) = (dims.2, dims.3);
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each_init(
            || vec![0u32; ho * wo],
            |idx, (p, out)| self.0.argmax(&x[p * h * w..][..h * w], dims, idx, out),
        );
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let dims = self.0.dims(h, w)?;
        let (ho, wo) = (dims.2, dims.3);
        let dy = dy.contiguous()?;
        let dx = with_f32(x, |xv| {
            with_f32(&dy, |g| {
                let mut dx = vec![0f32; n * c * h * w];
                dx.par_chunks_mut(h * w).enumerate().for_each_init(
                    || (vec![0u32; ho * wo], vec![0f32; ho * wo]),
                    |(idx, best), (p, out)| {
                        self.0.argmax(&xv[p * h * w..][..h * w], dims, idx, best);
                        for (&i, &gv) in idx.iter().zip(&g[p * ho * wo..][..ho * wo]) {
                            out[i as usize] += gv;
                        }
                    },
                );
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, (n, c, h, w), x.device())?))
    }
}

/// Max pooling of `x (N, C, H, W)`, differentiable on every device with PyTorch's backward:
/// each output's gradient goes to the first maximum of its window (row-major), not shared
/// between ties. On the CPU with f32 this is one custom op; elsewhere (or with
/// [`KernelPolicy::Portable`](crate::KernelPolicy)) it is [`portable`], made of candle ops.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_nn::{max_pool2d, MaxPoolConfig};
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// let y = max_pool2d(&x, MaxPoolConfig::RESNET_STEM)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5., 7., 13., 15.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d(x: &Tensor, cfg: MaxPoolConfig) -> Result<Tensor> {
    if crate::kernels::use_fast(&[x]) {
        return x.contiguous()?.apply_op1(MaxPool2d(cfg));
    }
    portable(x, cfg)
}

/// The portable max pool, from candle ops that every device has.
///
/// The input is padded with the lowest finite value (padding never wins, as −∞ in PyTorch);
/// for each of the k² window offsets, `index_select` along H and W picks that offset of every
/// window, giving k² tensors of the output's shape. A detached mask marks, per output, the
/// first offset that equals the maximum, and the output takes that window's value
/// (`where_cond`), so autograd sends each output's gradient to that one input through the
/// `index_select` backward. candle's own `max_pool2d` would scale the gradient of ties and has
/// no backward for stride ≠ kernel. NaN is not given PyTorch's precedence here.
pub fn portable(x: &Tensor, cfg: MaxPoolConfig) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ho, wo) = (cfg.out(h)?, cfg.out(w)?);
    let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
    let dev = x.device();
    let xp = if p == 0 {
        x.clone()
    } else {
        let pad = |t: &Tensor| t.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p);
        // (pad(1) − 1)·MAX is 0 inside and the lowest value on the border (a constant).
        let border = (pad(&x.ones_like()?)? - 1.0)?.affine(f32::MAX as f64, 0.0)?;
        (pad(x)? + border)?
    };
    let index = |offset: usize, n: usize| -> Result<Tensor> {
        let idx: Vec<u32> = (0..n).map(|o| (o * s + offset) as u32).collect();
        Tensor::from_vec(idx, n, dev)
    };
    // Window offsets in PyTorch's scan order: row by row.
    let mut windows = Vec::with_capacity(k * k);
    for dy in 0..k {
        let rows = xp.index_select(&index(dy, ho)?, 2)?;
        for dx in 0..k {
            windows.push(rows.index_select(&index(dx, wo)?, 3)?);
        }
    }
    let mut best = windows[0].detach();
    for win in &windows[1..] {
        best = best.maximum(&win.detach())?;
    }
    // The first offset holding the maximum takes the output: `taken` marks outputs already
    // assigned. `where_cond` (not a product with a one-hot) routes the gradient to that one
    // window and never multiplies a border value (−∞ in half precision) by zero.
    let mut taken = best.zeros_like()?.to_dtype(DType::U8)?;
    let mut out = best.zeros_like()?;
    for win in &windows {
        let first = (win.detach().eq(&best)? * taken.eq(0u8 as f64)?)?;
        taken = (taken + &first)?;
        out = first.where_cond(win, &out)?;
    }
    Ok(out)
}
