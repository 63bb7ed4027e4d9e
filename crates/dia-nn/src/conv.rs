//! `Conv2d` as a candle custom op with its own forward, input gradient and weight gradient
//! (performance-baseline §4, issue #3).
//!
//! Stock candle computes the input gradient with a direct `conv_transpose2d` loop and the weight
//! gradient with a mis-shaped convolution; together they are ~60 % of a ResNet training step on
//! CPU. Here, on CPUs with AVX-512, the three passes run on register tiles that read the padded
//! feature map in place (`fastconv`; strided input gradients excepted). Otherwise, and for those,
//! per chunk of images (so the im2col buffer stays bounded whatever the batch):
//! - forward: `Y[cout, n·HoWo] = W[cout, K] · col[K, n·HoWo]`;
//! - input gradient: `dcol = Wᵀ · dY`, then col2im;
//! - weight gradient: `dW = Σ dY_b · col_bᵀ`, images split across threads (see
//!   `backward_weight_gemm` for why not one deep gemm).
//!
//! That custom op is the fast path; the portable path (other devices, other dtypes, or
//! [`KernelPolicy::Portable`](crate::KernelPolicy)) is candle's own `conv2d`, whose autograd
//! computes the input gradient with `conv_transpose2d` and the weight gradient with a
//! convolution of the input by the gradient — correct for any stride and padding, and what a
//! GPU runs. [`crate::kernels::use_fast`] chooses.

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use rand::RngCore;
use rayon::prelude::*;

use crate::fastconv;
use crate::gemm::{sgemm, sgemm_serial, MatRef};
use crate::im2col::{col2im, im2col, im2col_serial, ConvGeom};
use crate::init;
use crate::storage::{cpu_slice, zeros};
use frozen::FrozenFilter;

/// Largest im2col buffer, in floats (64 MiB). The batch is processed in chunks that fit.
pub const DEFAULT_COL_BUDGET: usize = 16 << 20;

/// Stride and padding of a square 2-D convolution (dilation 1, one group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Conv2dConfig {
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2dConfig {
    /// A config with the given stride and padding.
    pub fn new(stride: usize, padding: usize) -> Self {
        Self { stride, padding }
    }
}

fn geom(x: &[usize], w: &[usize], cfg: &Conv2dConfig) -> Result<ConvGeom> {
    let (&[n, cin, h, wd], &[cout, wcin, kh, kw]) = (x, w) else {
        candle_core::bail!("conv2d: input {x:?} and weight {w:?} must both have rank 4")
    };
    if wcin != cin {
        candle_core::bail!(
            "conv2d: weight {w:?} expects {wcin} input channels, input {x:?} has {cin}"
        )
    }
    if cfg.stride == 0 {
        candle_core::bail!("conv2d: stride must be positive")
    }
    // The kernels split their work in chunks of these sizes: a zero would panic deep inside.
    if [cin, h, wd, cout, kh, kw].contains(&0) {
        candle_core::bail!(
            "conv2d: input {x:?} and weight {w:?} must have non-zero channels, sides and kernel"
        )
    }
    let (hp, wp) = (h + 2 * cfg.padding, wd + 2 * cfg.padding);
    if hp < kh || wp < kw {
        candle_core::bail!("conv2d: kernel {kh}x{kw} is larger than the padded input {hp}x{wp}")
    }
    Ok(ConvGeom {
        n,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        stride: cfg.stride,
        pad: cfg.padding,
        ho: (hp - kh) / cfg.stride + 1,
        wo: (wp - kw) / cfg.stride + 1,
    })
}

/// Copies images `b0..b0+nb` of an NCHW (C = rows) tensor into a `[rows, nb·hw]` matrix, or
/// back with `scatter`. Parallel over (image, row).
fn gather_rows(nchw: &[f32], rows: usize, hw: usize, b0: usize, nb: usize, mat: &mut [f32]) {
    mat.par_chunks_mut(hw).enumerate().for_each(|(i, dst)| {
        let (r, b) = (i / nb, i % nb);
        dst.copy_from_slice(&nchw[((b0 + b) * rows + r) * hw..][..hw]);
    });
}

fn scatter_rows(mat: &[f32], rows: usize, hw: usize, b0: usize, nb: usize, nchw: &mut [f32]) {
    let out = &mut nchw[b0 * rows * hw..(b0 + nb) * rows * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(i, dst)| {
        let (b, r) = (i / rows, i % rows);
        dst.copy_from_slice(&mat[(r * nb + b) * hw..][..hw]);
    });
}

/// The CPU kernels a convolution pass can run on, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// Winograd F(4×4, 3×3) (`winograd`).
    Winograd,
    /// The AVX-512 register tiles without im2col (`fastconv`).
    Tiles,
    /// im2col chunks and gemm: any CPU, any shape.
    Gemm,
}

impl Kernel {
    /// The one choice of kernel for a pass of geometry `g` (for the input gradient: the
    /// geometry of its stride-1 convolution of `dY`), under the kernel policy in force
    /// ([`KernelPolicy`](crate::KernelPolicy)) and what the CPU and the shape allow.
    fn choose(g: &ConvGeom) -> Self {
        let (tiles, winograd) = crate::kernels::cpu_kernels();
        if winograd && crate::winograd::applies(g) {
            Kernel::Winograd
        } else if tiles && g.fits_tiles() {
            Kernel::Tiles
        } else {
            Kernel::Gemm
        }
    }
}

/// Forward: `y (n, cout, ho, wo)`; Winograd's transformed filters kept in `frozen` when given.
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    g: &ConvGeom,
    budget: usize,
    frozen: Option<&FrozenFilter>,
) -> Vec<f32> {
    match Kernel::choose(g) {
        Kernel::Winograd => match frozen {
            Some(f) => {
                let u = f.get_or_init(|| crate::winograd::forward_filter(w, g));
                crate::winograd::forward_with(x, u, g)
            }
            None => crate::winograd::forward(x, w, g),
        },
        Kernel::Tiles => fastconv::forward(x, w, g),
        Kernel::Gemm => forward_gemm(x, w, g, budget),
    }
}

/// The portable forward: im2col chunks and `gemm`.
fn forward_gemm(x: &[f32], w: &[f32], g: &ConvGeom, budget: usize) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    let mut y = zeros(g.n * g.cout * hw_o);
    let chunk = g.chunk(budget);
    let mut col = zeros(k * chunk * hw_o);
    let mut tmp = if chunk > 1 {
        vec![0.0f32; g.cout * chunk * hw_o]
    } else {
        Vec::new()
    };
    let wm = MatRef::row_major(w, g.cout, k);
    for b0 in (0..g.n).step_by(chunk) {
        let nb = chunk.min(g.n - b0);
        let ncol = nb * hw_o;
        im2col(x, g, b0, nb, &mut col);
        let colm = MatRef::row_major(&col[..k * ncol], k, ncol);
        if nb == 1 {
            // One image: gemm writes straight into its NCHW slot.
            sgemm(
                &mut y[b0 * g.cout * hw_o..][..g.cout * hw_o],
                hw_o,
                wm,
                colm,
                false,
            );
        } else {
            sgemm(&mut tmp[..g.cout * ncol], ncol, wm, colm, false);
            scatter_rows(&tmp[..g.cout * ncol], g.cout, hw_o, b0, nb, &mut y);
        }
    }
    y
}

/// `dY (n, cout, ho, wo)` as a `[cout, nb·HoWo]` matrix for images `b0..b0+nb`.
fn grad_matrix<'a>(
    dy: &'a [f32],
    g: &ConvGeom,
    b0: usize,
    nb: usize,
    buf: &'a mut [f32],
) -> MatRef<'a> {
    let hw_o = g.hw_out();
    if nb == 1 {
        MatRef::row_major(&dy[b0 * g.cout * hw_o..][..g.cout * hw_o], g.cout, hw_o)
    } else {
        gather_rows(dy, g.cout, hw_o, b0, nb, &mut buf[..g.cout * nb * hw_o]);
        MatRef::row_major(&buf[..g.cout * nb * hw_o], g.cout, nb * hw_o)
    }
}

/// Input gradient: `dx (n, cin, h, w)`. Stride 1 runs as a forward of `dY` (Winograd or the
/// tiles) when it can; strided layers on gemm + col2im.
pub(crate) fn backward_input(dy: &[f32], w: &[f32], g: &ConvGeom, budget: usize) -> Vec<f32> {
    if !fastconv::input_grad_supported(g) {
        return backward_input_gemm(dy, w, g, budget);
    }
    match Kernel::choose(&g.transposed()) {
        Kernel::Winograd => crate::winograd::backward_input(dy, w, g),
        Kernel::Tiles => fastconv::backward_input(dy, w, g),
        Kernel::Gemm => backward_input_gemm(dy, w, g, budget),
    }
}

/// The portable input gradient: `gemm` into im2col chunks, then col2im.
fn backward_input_gemm(dy: &[f32], w: &[f32], g: &ConvGeom, budget: usize) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    let mut dx = zeros(g.n * g.cin * g.hw_in());
    let chunk = g.chunk(budget);
    let mut dcol = zeros(k * chunk * hw_o);
    let mut gbuf = if chunk > 1 {
        vec![0.0f32; g.cout * chunk * hw_o]
    } else {
        Vec::new()
    };
    let wt = MatRef::row_major(w, g.cout, k).t();
    for b0 in (0..g.n).step_by(chunk) {
        let nb = chunk.min(g.n - b0);
        let ncol = nb * hw_o;
        let gm = grad_matrix(dy, g, b0, nb, &mut gbuf);
        sgemm(&mut dcol[..k * ncol], ncol, wt, gm, false);
        col2im(&dcol[..k * ncol], g, b0, nb, &mut dx);
    }
    dx
}

/// Weight gradient: `dw (cout, cin, kh, kw)`, summed over the batch; on the AVX-512 tile when
/// the CPU has it.
pub(crate) fn backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    match Kernel::choose(g) {
        Kernel::Winograd => crate::winograd::backward_weight(x, dy, g),
        Kernel::Tiles => fastconv::backward_weight(x, dy, g),
        Kernel::Gemm => backward_weight_gemm(x, dy, g),
    }
}

/// The portable weight gradient.
///
/// `dW = Σ_b dY_b · col_bᵀ` contracts over output pixels, the axis along which both operands are
/// contiguous; as one deep gemm over a whole chunk its packing walks columns `n·Ho·Wo` floats
/// apart and runs at ~60 GFLOP/s on one or two threads. Per image the stride is `Ho·Wo`, so the
/// batch is split across threads, each accumulating its images into a private dW with a serial
/// gemm, and the partial sums are added at the end. Memory: one image's im2col per thread.
fn backward_weight_gemm(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, hw_o) = (g.k(), g.hw_out());
    let threads = rayon::current_num_threads().clamp(1, g.n.max(1));
    let partials: Vec<Vec<f32>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let (lo, hi) = (t * g.n / threads, (t + 1) * g.n / threads);
            let mut dw = vec![0.0f32; g.cout * k];
            let mut col = vec![0.0f32; k * hw_o];
            for b in lo..hi {
                im2col_serial(x, g, b, &mut col);
                let gm = MatRef::row_major(&dy[b * g.cout * hw_o..][..g.cout * hw_o], g.cout, hw_o);
                let colt = MatRef::row_major(&col, k, hw_o).t();
                sgemm_serial(&mut dw, k, gm, colt, b > lo);
            }
            dw
        })
        .collect();
    let mut dw = vec![0.0f32; g.cout * k];
    for p in &partials {
        for (d, v) in dw.iter_mut().zip(p) {
            *d += v;
        }
    }
    dw
}

/// The forward op on (input, weight); its backward applies [`InputGrad`] and [`WeightGrad`].
struct Conv2dOp {
    cfg: Conv2dConfig,
    budget: usize,
    /// The weight's transformed filters, for a frozen layer.
    frozen: Option<FrozenFilter>,
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "dia-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geom(l1.dims(), l2.dims(), &self.cfg)?;
        let x = cpu_slice(s1, l1, "conv2d input")?;
        let w = cpu_slice(s2, l2, "conv2d weight")?;
        let y = forward(x, w, &g, self.budget, self.frozen.as_ref());
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        // An input that no gradient flows to (the images fed to the first layer) needs no dx.
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(
                w,
                &InputGrad {
                    cfg: self.cfg,
                    budget: self.budget,
                    x_dims: x.dims().to_vec(),
                },
            )?)
        } else {
            None
        };
        let dw = x.apply_op2_no_bwd(
            &dy,
            &WeightGrad {
                cfg: self.cfg,
                w_dims: w.dims().to_vec(),
            },
        )?;
        Ok((dx, Some(dw)))
    }
}

/// The incoming gradient must have the forward output's shape (N, Cout, Ho, Wo).
fn check_grad_shape(dims: &[usize], g: &ConvGeom) -> Result<()> {
    if dims != [g.n, g.cout, g.ho, g.wo] {
        candle_core::bail!("conv2d backward: gradient {dims:?} does not match the output shape")
    }
    Ok(())
}

/// `dx` from (dY, W).
struct InputGrad {
    cfg: Conv2dConfig,
    budget: usize,
    x_dims: Vec<usize>,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "dia-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geom(&self.x_dims, l2.dims(), &self.cfg)?;
        check_grad_shape(l1.dims(), &g)?;
        let dy = cpu_slice(s1, l1, "conv2d gradient")?;
        let w = cpu_slice(s2, l2, "conv2d weight")?;
        let dx = backward_input(dy, w, &g, self.budget);
        Ok((CpuStorage::F32(dx), Shape::from(self.x_dims.clone())))
    }
}

/// `dW` from (x, dY).
struct WeightGrad {
    cfg: Conv2dConfig,
    w_dims: Vec<usize>,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "dia-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geom(l1.dims(), &self.w_dims, &self.cfg)?;
        check_grad_shape(l2.dims(), &g)?;
        let x = cpu_slice(s1, l1, "conv2d input")?;
        let dy = cpu_slice(s2, l2, "conv2d gradient")?;
        let dw = backward_weight(x, dy, &g);
        Ok((CpuStorage::F32(dw), Shape::from(self.w_dims.clone())))
    }
}

/// A 2-D convolution of `x (N, Cin, H, W)` with `weight (Cout, Cin, kh, kw)` and an optional
/// bias `(Cout)`, differentiable in all three.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_nn::{conv2d, Conv2dConfig};
/// let x = Tensor::ones((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let y = conv2d(&x, &w, None, Conv2dConfig::new(2, 1))?;
/// assert_eq!(y.dims(), [2, 4, 4, 4]);
/// // An interior output sums 3 x 3 x 3 ones.
/// assert_eq!(y.get(0)?.get(0)?.get(1)?.get(1)?.to_scalar::<f32>()?, 27.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_with_budget(x, weight, bias, cfg, DEFAULT_COL_BUDGET)
}

/// [`conv2d`] with an explicit im2col budget in floats (tests use tiny budgets to exercise the
/// chunking).
pub fn conv2d_with_budget(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    budget: usize,
) -> Result<Tensor> {
    conv2d_kept(x, weight, bias, cfg, budget, None)
}

/// [`conv2d_with_budget`], keeping the transformed filters in `frozen`.
fn conv2d_kept(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    budget: usize,
    frozen: Option<FrozenFilter>,
) -> Result<Tensor> {
    let y = if crate::kernels::use_fast(&[x, weight]) {
        let op = Conv2dOp {
            cfg,
            budget,
            frozen,
        };
        x.contiguous()?.apply_op2(&weight.contiguous()?, op)?
    } else {
        portable(x, weight, cfg)?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// The portable convolution: candle's `conv2d` and its autograd.
fn portable(x: &Tensor, weight: &Tensor, cfg: Conv2dConfig) -> Result<Tensor> {
    // The same geometry checks as the fast path, so both fail alike on bad shapes.
    geom(x.dims(), weight.dims(), &cfg)?;
    let (_, _, h, w) = x.dims4()?;
    if h != w {
        // candle's conv2d backward derives the output padding of both axes from the height.
        candle_core::bail!("conv2d: the portable path takes square inputs, got {h}x{w}")
    }
    x.contiguous()?
        .conv2d(&weight.contiguous()?, cfg.padding, cfg.stride, 1, 1)
}

/// A convolution layer: weight, optional bias and config.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
    frozen: Option<FrozenFilter>,
}

impl Conv2d {
    /// A layer from existing tensors (e.g. loaded from a checkpoint or `Var`s being trained).
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv2dConfig) -> Self {
        Self {
            weight,
            bias,
            cfg,
            frozen: None,
        }
    }

    /// The layer, declared to keep its weights as they are for as long as it lives (a
    /// dissolver's UNet): its CPU forward then transforms the filters for Winograd once, on the
    /// first call, and keeps them (module `frozen`), instead of on every call. Results are
    /// bit-equal to the unfrozen layer's. A trainable variable's layer is returned unchanged,
    /// since its weights do change; a layer on a plain tensor that shares a variable's storage
    /// (`Var::as_detached_tensor`) must not be frozen while that variable is trained.
    ///
    /// ```
    /// use candle_core::{Device, Module};
    /// use dia_nn::{init::uniform, Conv2d, Conv2dConfig};
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let w = uniform((32, 32, 3, 3), 0.1, &mut rng, &Device::Cpu)?;
    /// let x = uniform((2, 32, 8, 8), 1.0, &mut rng, &Device::Cpu)?;
    /// let layer = Conv2d::new(w, None, Conv2dConfig::new(1, 1));
    /// let frozen = layer.clone().freeze();
    /// let diff = (frozen.forward(&x)? - layer.forward(&x)?)?.abs()?.max_all()?;
    /// assert_eq!(diff.to_scalar::<f32>()?, 0.0);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn freeze(mut self) -> Self {
        if !self.weight.is_variable() {
            self.frozen.get_or_insert_with(FrozenFilter::default);
        }
        self
    }

    /// A layer with PyTorch's default initialisation (`nn.Conv2d`), drawn from `rng`.
    pub fn init(
        cin: usize,
        cout: usize,
        kernel: usize,
        cfg: Conv2dConfig,
        bias: bool,
        rng: &mut dyn RngCore,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let weight = init::default_weight((cout, cin, kernel, kernel), rng, device)?;
        let bias = if bias {
            Some(init::default_bias(
                cout,
                cin * kernel * kernel,
                rng,
                device,
            )?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, cfg))
    }

    /// The weight (Cout, Cin, kh, kw).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias (Cout).
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride and padding.
    pub fn config(&self) -> Conv2dConfig {
        self.cfg
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = (&self.weight, self.bias.as_ref());
        conv2d_kept(x, w, b, self.cfg, DEFAULT_COL_BUDGET, self.frozen.clone())
    }
}

mod frozen;
#[cfg(test)]
mod tests;
