//! Max pooling with a backward for any kernel, stride and padding (padding counts as −∞, as in
//! PyTorch). candle 0.11 has no backward for the ResNet ImageNet stem's 3×3 / stride 2 /
//! padding 1 pool (performance-baseline §3); this op routes each output gradient to the first
//! maximum of its window, as PyTorch's saved indices do.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{cpu_slice, with_f32};

mod argmax;
pub(crate) use argmax::{Code, Offsets, Scratch};

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

    /// (H, W, Ho, Wo) of a plane and its output, and a check that window offsets fit a
    /// [`Code`] and plane indices a `u32`.
    pub(crate) fn dims(&self, h: usize, w: usize) -> Result<argmax::Dims> {
        if h * w > u32::MAX as usize {
            bail!("max pool: a {h}x{w} plane is too large")
        }
        if self.kernel * self.kernel > Code::MAX as usize + 1 {
            bail!(
                "max pool: a window of {} is too large (at most 256)",
                self.kernel
            )
        }
        Ok((h, w, self.out(h)?, self.out(w)?))
    }

    /// Pools each plane of `x` into `y` (both row-major, plane after plane), keeping each
    /// maximum's [`Code`] in `codes` when given (a backward will follow). `pre` turns an
    /// input plane into the plane that is pooled (the fused stem's batch norm and ReLU), or
    /// `None` pools `x` as it is.
    pub(crate) fn pool_planes(
        &self,
        x: &[f32],
        dims: argmax::Dims,
        y: &mut [f32],
        codes: Option<&mut [Code]>,
        pre: Option<&PlaneMap<'_>>,
    ) {
        let (hw, hwo) = (dims.0 * dims.1, dims.2 * dims.3);
        let one = |p: usize, out: &mut [f32], keep: Option<&mut [Code]>, buf: &mut PlaneBuf| {
            let plane = &x[p * hw..][..hw];
            let plane = match pre {
                Some(f) => {
                    buf.plane.resize(hw, 0.0);
                    f(p, plane, &mut buf.plane);
                    &buf.plane[..]
                }
                None => plane,
            };
            buf.code.resize(hwo, 0);
            self.argmax(plane, dims, &mut buf.code, out, &mut buf.scratch);
            if let Some(keep) = keep {
                for (d, &c) in keep.iter_mut().zip(&buf.code) {
                    *d = c as Code;
                }
            }
        };
        match codes {
            Some(codes) => y
                .par_chunks_mut(hwo)
                .zip(codes.par_chunks_mut(hwo))
                .enumerate()
                .for_each_init(PlaneBuf::default, |buf, (p, (out, keep))| {
                    one(p, out, Some(keep), buf)
                }),
            None => y
                .par_chunks_mut(hwo)
                .enumerate()
                .for_each_init(PlaneBuf::default, |buf, (p, out)| one(p, out, None, buf)),
        }
    }
}

/// What [`MaxPoolConfig::pool_planes`] pools instead of input plane `p`: `f(p, plane, out)`.
pub(crate) type PlaneMap<'a> = dyn Fn(usize, &[f32], &mut [f32]) + Sync + 'a;

/// Per-thread buffers of [`MaxPoolConfig::pool_planes`].
#[derive(Default)]
struct PlaneBuf {
    plane: Vec<f32>,
    code: Vec<u32>,
    scratch: Scratch,
}

/// The op: the pool and, when a backward will follow, each maximum's [`Code`] kept from the
/// forward (as PyTorch keeps its indices: two bytes per output), so that the backward routes
/// the gradient without scanning the windows again.
struct MaxPool2d {
    cfg: MaxPoolConfig,
    codes: Option<Mutex<Vec<Code>>>,
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "dia-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "max pool")?;
        let [n, c, h, w] = *l.dims() else {
            bail!("max pool: expected (N, C, H, W), got {:?}", l.dims())
        };
        let dims = self.cfg.dims(h, w)?;
        let len = n * c * dims.2 * dims.3;
        let mut y = vec![0f32; len];
        match &self.codes {
            Some(keep) => {
                let mut codes = vec![0; len];
                self.cfg
                    .pool_planes(x, dims, &mut y, Some(&mut codes), None);
                *keep.lock().expect("max pool codes lock") = codes;
            }
            None => self.cfg.pool_planes(x, dims, &mut y, None, None),
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, dims.2, dims.3))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let dims = self.cfg.dims(h, w)?;
        let hwo = dims.2 * dims.3;
        let codes = match &self.codes {
            Some(keep) => keep.lock().expect("max pool codes lock"),
            None => bail!("max pool: a backward through a forward that kept no maxima"),
        };
        if codes.len() != n * c * hwo {
            bail!("max pool: a backward before its forward ran")
        }
        let offsets = Offsets::new(&self.cfg, dims);
        let dy = dy.contiguous()?;
        let dx = with_f32(&dy, |g| {
            let mut dx = vec![0f32; n * c * h * w];
            dx.par_chunks_mut(h * w).enumerate().for_each(|(p, out)| {
                let at = offsets.indices(&codes[p * hwo..][..hwo]);
                for (i, &gv) in at.zip(&g[p * hwo..][..hwo]) {
                    out[i] += gv;
                }
            });
            dx
        })?;
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
        // The maxima are kept for a backward only where one can follow.
        let codes = x.track_op().then(|| Mutex::new(Vec::new()));
        return x.contiguous()?.apply_op1(MaxPool2d { cfg, codes });
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
