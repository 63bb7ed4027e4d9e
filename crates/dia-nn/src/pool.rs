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
    /// ones, as in PyTorch's kernel).
    ///
    /// The window is clipped to the plane once per output position, so the scan is over
    /// plain row slices with no bounds test per element.
    fn argmax(&self, plane: &[f32], h: usize, w: usize, ho: usize, wo: usize, out: &mut [usize]) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // [lo, hi) of the window of output `o` along an axis of `size`, clipped.
        let span = |o: usize, size: usize| {
            let start = o * s;
            (
                start.saturating_sub(p),
                (start + k).saturating_sub(p).min(size),
            )
        };
        for oy in 0..ho {
            let (ylo, yhi) = span(oy, h);
            for ox in 0..wo {
                let (xlo, xhi) = span(ox, w);
                let (mut best, mut arg) = (f32::NEG_INFINITY, ylo * w + xlo);
                for iy in ylo..yhi {
                    for (j, &v) in plane[iy * w + xlo..iy * w + xhi].iter().enumerate() {
                        if v > best || v.is_nan() {
                            best = v;
                            arg = iy * w + xlo + j;
                        }
                    }
                }
                out[oy * wo + ox] = arg;
            }
        }
    }
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
        let (ho, wo) = (self.0.out(h)?, self.0.out(w)?);
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each_init(
            || vec![0usize; ho * wo],
            |idx, (p, out)| {
                let plane = &x[p * h * w..][..h * w];
                self.0.argmax(plane, h, w, ho, wo, idx);
                for (o, &i) in out.iter_mut().zip(idx.iter()) {
                    *o = plane[i];
                }
            },
        );
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo) = (self.0.out(h)?, self.0.out(w)?);
        let dy = dy.contiguous()?;
        let dx = with_f32(x, |xv| {
            with_f32(&dy, |g| {
                let mut dx = vec![0f32; n * c * h * w];
                dx.par_chunks_mut(h * w).enumerate().for_each_init(
                    || vec![0usize; ho * wo],
                    |idx, (p, out)| {
                        self.0.argmax(&xv[p * h * w..][..h * w], h, w, ho, wo, idx);
                        for (&i, &gv) in idx.iter().zip(&g[p * ho * wo..][..ho * wo]) {
                            out[i] += gv;
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
