//! `BatchNorm2d` with PyTorch's semantics and an analytic backward in one custom op.
//!
//! Training: per channel, the batch mean and the *biased* variance over (N, H, W) normalise the
//! input; the running estimates move by `momentum` (0.1) towards the batch mean and the
//! *unbiased* variance, as `torch.nn.BatchNorm2d`. Evaluation: the running estimates normalise.
//! eps is 1e-5. The ReLU that follows most batch norms in a ResNet can be fused into the op.
//!
//! candle-nn's training batch norm is ~10 autograd ops over full-size tensors; here the forward
//! is two passes over the input and the backward two passes over the gradient
//! (performance-baseline §4b).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, Var};
use rayon::prelude::*;

use crate::storage::{cpu_slice, nchw, with_f32};

mod stats;
use stats::channel_sums;
pub(crate) use stats::{channel_stats, operands, BnBackward, Stats};

/// The training forward on (x, gamma, beta); the statistics are shared with the layer (running
/// estimates) and the backward.
struct BatchNormTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Stats>>,
}

/// `y = x·scale[c] + shift[c]` per channel, then ReLU when asked: the forward of both ops.
fn affine_channels(
    x: &[f32],
    c: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    if hw > 0 {
        y.par_chunks_mut(hw).enumerate().for_each(|(p, out)| {
            affine_plane(&x[p * hw..][..hw], scale[p % c], shift[p % c], relu, out);
        });
    }
    y
}

/// `y = x·scale + shift` over one plane, then ReLU when asked: the one expression of batch
/// norm's forward, which the stem's fused op (`bn_relu_pool`) also evaluates, so that the two
/// give the same bits.
pub(crate) fn affine_plane(x: &[f32], scale: f32, shift: f32, relu: bool, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let t = v * scale + shift;
        *o = if relu { t.max(0.0) } else { t };
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "dia-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = nchw(l1.dims(), "batch norm")?;
        let [x, gamma, beta] = operands([(s1, l1), (s2, l2), (s3, l3)], c, "batch norm")?;
        let stats = channel_stats(x, n, c, hw, self.eps);
        let (scale, shift) = stats.affine(gamma, beta);
        let y = affine_channels(x, c, hw, &scale, &shift, self.relu);
        *self.stats.lock().expect("stats lock") = stats;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let stats = self.stats.lock().expect("stats lock").clone();
        let dy = dy.contiguous()?;
        let gamma_v = gamma.to_vec1::<f32>()?;
        let relu = self.relu;
        // dy through the ReLU: zero where the output was clipped.
        let eff = |dyv: f32, yv: f32| if relu && yv <= 0.0 { 0.0 } else { dyv };
        let (dx, bwd) = with_f32(x, |xv| {
            with_f32(y, |yv| {
                with_f32(&dy, |dyv| {
                    // (Σ dy, Σ dy·(x − mean)) per channel; Σ dy·x̂ is the second times invstd.
                    let sums = channel_sums(
                        n,
                        c,
                        hw,
                        |p| [&dyv[p * hw..], &yv[p * hw..], &xv[p * hw..]],
                        |ch, [d, yv, xv]| {
                            let g = eff(d, yv);
                            (g, g * (xv - stats.mean[ch]))
                        },
                    );
                    let bwd = BnBackward {
                        stats: &stats,
                        gamma: &gamma_v,
                        sums,
                    };
                    let mut dx = vec![0f32; xv.len()];
                    dx.par_chunks_mut(hw).enumerate().for_each(|(p, out)| {
                        let g = dyv[p * hw..][..hw].iter().zip(&yv[p * hw..]);
                        bwd.plane(p % c, &xv[p * hw..][..hw], g.map(|(&d, &y)| eff(d, y)), out);
                    });
                    (dx, bwd)
                })
            })
        })???;
        bwd.finish(dx, &[n, c, h, w], x.device())
    }
}

/// Evaluation-mode batch norm as one pass: `y = x·scale[c] + shift[c]`, optionally ReLU, on
/// (x, scale, shift); scale and shift come from the running estimates through candle ops, so
/// gradients still reach γ and β.
struct ChannelAffine {
    relu: bool,
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "dia-channel-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(l1.dims(), "batch norm")?;
        let (x, scale, shift) = (
            cpu_slice(s1, l1, "batch norm")?,
            cpu_slice(s2, l2, "batch norm")?,
            cpu_slice(s3, l3, "batch norm")?,
        );
        if scale.len() != c || shift.len() != c {
            bail!(
                "batch norm: {c} channels but {} / {} statistics",
                scale.len(),
                shift.len()
            )
        }
        let y = affine_channels(x, c, hw, scale, shift, self.relu);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let dy = dy.contiguous()?;
        let scale_v = scale.to_vec1::<f32>()?;
        let relu = self.relu;
        let (dx, dscale, dshift) = with_f32(x, |xv| {
            with_f32(y, |yv| {
                with_f32(&dy, |g| {
                    let eff = |d: f32, y: f32| if relu && y <= 0.0 { 0.0 } else { d };
                    // (Σ dy·x, Σ dy) per channel.
                    let sums = channel_sums(
                        n,
                        c,
                        hw,
                        |p| [&g[p * hw..], &yv[p * hw..], &xv[p * hw..]],
                        |_, [d, y, x]| (eff(d, y) * x, eff(d, y)),
                    );
                    let mut dx = vec![0f32; xv.len()];
                    if hw > 0 {
                        dx.par_chunks_mut(hw).enumerate().for_each(|(p, out)| {
                            let planes = g[p * hw..].iter().zip(&yv[p * hw..]);
                            for (o, (&d, &y)) in out.iter_mut().zip(planes) {
                                *o = eff(d, y) * scale_v[p % c];
                            }
                        });
                    }
                    let dscale: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
                    let dshift: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
                    (dx, dscale, dshift)
                })
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (n, c, h, w), dev)?),
            Some(Tensor::from_vec(dscale, c, dev)?),
            Some(Tensor::from_vec(dshift, c, dev)?),
        ))
    }
}

/// A 2-D batch norm layer with affine parameters and running estimates.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_nn::BatchNorm2d;
/// let bn = BatchNorm2d::new(2, &Device::Cpu)?;
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((2, 2, 2, 2))?;
/// let y = bn.forward_t(&x, true)?;
/// // Normalised per channel: mean 0.
/// assert!(y.mean_all()?.to_scalar::<f32>()?.abs() < 1e-5);
/// // The running mean moved 10 % of the way to the batch mean (channel 0: 5.5).
/// assert!((bn.running_mean().to_vec1::<f32>()?[0] - 0.55).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: AtomicU64,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// PyTorch's initial state: weight 1, bias 0, running mean 0, running variance 1.
    pub fn new(channels: usize, device: &Device) -> Result<Self> {
        Self::from_tensors(
            Tensor::ones(channels, DType::F32, device)?,
            Tensor::zeros(channels, DType::F32, device)?,
            Tensor::zeros(channels, DType::F32, device)?,
            Tensor::ones(channels, DType::F32, device)?,
            0,
        )
    }

    /// A layer from existing tensors (weight and bias may be trainable `Var`s).
    pub fn from_tensors(
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        num_batches_tracked: u64,
    ) -> Result<Self> {
        let c = weight.elem_count();
        for (name, t) in [
            ("bias", &bias),
            ("running_mean", &running_mean),
            ("running_var", &running_var),
        ] {
            if t.dims() != [c] {
                bail!(
                    "batch norm: {name} has shape {:?}, expected [{c}]",
                    t.dims()
                )
            }
        }
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean.detach())?,
            running_var: Var::from_tensor(&running_var.detach())?,
            num_batches_tracked: AtomicU64::new(num_batches_tracked),
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Batch norm in training (`train = true`: batch statistics, running estimates updated) or
    /// evaluation mode.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, train, false)
    }

    /// Batch norm followed by ReLU, fused on the CPU.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, train, true)
    }

    /// The channel count, after checking that `x` (N, C, H, W) has it.
    pub(crate) fn channels_of(&self, x: &Tensor) -> Result<usize> {
        let c = self.weight.elem_count();
        let (_, xc, _, _) = x.dims4()?;
        if xc != c {
            bail!("batch norm over {c} channels applied to an input with {xc}")
        }
        Ok(c)
    }

    /// Whether a training forward on `x` takes a fast custom op ([`crate::kernels::use_fast`]).
    pub(crate) fn fast_training(&self, x: &Tensor) -> bool {
        crate::kernels::use_fast(&[x, &self.weight, &self.bias])
    }

    /// A fast training op on (x, γ, β), made by `op` from eps and the statistics it fills
    /// (`BatchNormTrain`, or the stem's batch norm + ReLU + max pool); then the running
    /// estimates move.
    pub(crate) fn train_op<O: CustomOp3 + Send + Sync + 'static>(
        &self,
        x: &Tensor,
        op: impl FnOnce(f64, Arc<Mutex<Stats>>) -> O,
    ) -> Result<Tensor> {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let y = x.contiguous()?.apply_op3(
            &self.weight.contiguous()?,
            &self.bias.contiguous()?,
            op(self.eps, Arc::clone(&stats)),
        )?;
        let s = stats.lock().expect("stats lock").clone();
        let dev = x.device();
        self.update_running(Tensor::new(s.mean, dev)?, Tensor::new(s.var, dev)?, s.count)?;
        Ok(y)
    }

    /// Running estimates as PyTorch: the unbiased variance, momentum 0.1.
    fn update_running(&self, mean: Tensor, var: Tensor, count: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = (var * (count as f64 / (count.max(2) - 1) as f64))?;
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
        self.num_batches_tracked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn forward_impl(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let c = self.channels_of(x)?;
        if !train {
            let invstd = (self.running_var.as_tensor() + self.eps)?.sqrt()?.recip()?;
            let scale = (&self.weight * invstd)?;
            let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
            if crate::kernels::use_fast(&[x, &scale, &shift]) {
                return x
                    .contiguous()?
                    .apply_op3(&scale, &shift, ChannelAffine { relu });
            }
            let y = x
                .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
                .broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
            return if relu {
                crate::kernels::relu(&y)
            } else {
                Ok(y)
            };
        }
        if self.fast_training(x) {
            return self.train_op(x, |eps, stats| BatchNormTrain { eps, relu, stats });
        }
        // The portable path: candle's own ops and autograd. Every reduction over (N, H, W)
        // is staged, over each plane (H·W) and then over the batch (N), in the forward and,
        // because the broadcasts are staged the same way, in the backward's channel sums
        // (Σ dy, Σ dy·x̂) too: two short f32 sums instead of one of N·H·W elements, which
        // drifted measurably from the fast path's f64 sums.
        let (n, _, h, w) = x.dims4()?;
        let planes = (n, c, 1, 1);
        let over_batch = |t: &Tensor| -> Result<Tensor> {
            t.mean_keepdim((2, 3))?
                .mean_keepdim(0)?
                .broadcast_as(planes)
        };
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1))?.broadcast_as(planes);
        let mean = over_batch(x)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = over_batch(&centred.sqr()?)?;
        let xhat = centred.broadcast_div(&(&var + self.eps)?.sqrt()?)?;
        let y = xhat
            .broadcast_mul(&per_channel(&self.weight)?)?
            .broadcast_add(&per_channel(&self.bias)?)?;
        let y = if relu { crate::kernels::relu(&y)? } else { y };
        let first = |t: Tensor| t.narrow(0, 0, 1)?.flatten_all().map(|t| t.detach());
        let (mean, var) = (first(mean)?, first(var)?);
        self.update_running(mean, var, n * h * w)?;
        Ok(y)
    }

    /// The scale γ.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The shift β.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
    /// The running mean.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }
    /// The running (unbiased) variance.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }
    /// Training forwards so far (PyTorch's `num_batches_tracked`).
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked.load(Ordering::Relaxed)
    }
}
