//! GroupNorm and the weight-standardised convolution of the DDPM UNet
//! (`denoising_diffusion_pytorch` 0.27.12, spec §2.1).
//!
//! Both are composed from candle ops, so candle's autograd differentiates them and the DDPM can
//! be trained in Rust; the convolution inside is this crate's [`conv2d`]. On the CPU with f32
//! and an affine (as every GroupNorm of the UNet has), the group norm is instead one custom op
//! with its analytic backward (`GroupNormOp`): the candle composition makes a dozen passes
//! over the activation, its reductions on one thread, and was with candle's element-wise ops
//! the largest cost of the UNet step after the convolutions (issue #17).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{conv2d, Conv2dConfig};
use crate::fast_exp;
use crate::storage::{cpu_slice, nchw, with_f32};

/// The fused GroupNorm of `x (N, C, H, W)` with per-channel `weight` and `bias`: per (sample,
/// group) the mean and biased variance in f64, then `(x − μ)·r·γ + β` with `r = 1/√(var + eps)`.
/// The backward recomputes μ and r from `x` (one pass) instead of keeping them, and returns
/// `dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` over the group (`dx̂ = dy·γ`), `dγ = Σ dy·x̂`,
/// `dβ = Σ dy`.
struct GroupNormOp {
    groups: usize,
    eps: f64,
}

impl GroupNormOp {
    /// (N, C, H·W) of `x`, checked against the groups and the affine's length.
    fn dims(&self, dims: &[usize], affine: [usize; 2]) -> Result<(usize, usize, usize)> {
        let (n, c, hw) = nchw(dims, "group norm")?;
        if affine != [c, c] {
            bail!("group norm: {c} channels but an affine of {affine:?}")
        }
        Ok((n, c, hw))
    }
}

/// μ and r = 1/√(var + eps) of one group's values, in f64.
fn group_stats(v: &[f32], eps: f64) -> (f64, f64) {
    let m = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / m;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / m;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The per-channel `(a, b)` of `y = x·a + b` for channel `ch` of a group with μ and r: the one
/// expression of both group-norm ops, so their values agree to the bit.
fn channel_affine(mean: f64, r: f64, gamma: f32, beta: f32) -> (f32, f32) {
    let a = r * gamma as f64;
    (a as f32, (beta as f64 - mean * a) as f32)
}

/// Group norm's forward pass over `x` (N, C, H·W) in `groups` groups: per (sample, group) μ
/// and r, then `plane(sample, channel, a, b, x, y)` writes each channel plane `y` from its
/// `x` and the affine `x·a + b` of [`channel_affine`]. Both group-norm ops run on it.
// The layout and the affine are plain numbers and slices: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn normalise(
    x: &[f32],
    c: usize,
    hw: usize,
    groups: usize,
    eps: f64,
    gamma: &[f32],
    beta: &[f32],
    plane: impl Fn(usize, usize, f32, f32, &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let cg = c / groups;
    let mut y = vec![0f32; x.len()];
    if cg * hw > 0 {
        y.par_chunks_mut(cg * hw)
            .zip(x.par_chunks(cg * hw))
            .enumerate()
            .for_each(|(ng, (out, v))| {
                let (mean, r) = group_stats(v, eps);
                let c0 = (ng % groups) * cg;
                for (j, (o, v)) in out.chunks_mut(hw).zip(v.chunks(hw)).enumerate() {
                    let (a, b) = channel_affine(mean, r, gamma[c0 + j], beta[c0 + j]);
                    plane(ng / groups, c0 + j, a, b, v, o);
                }
            });
    }
    y
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "dia-group-norm"
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
        let (x, gamma, beta) = (
            cpu_slice(s1, l1, "group norm")?,
            cpu_slice(s2, l2, "group norm")?,
            cpu_slice(s3, l3, "group norm")?,
        );
        let (_, c, hw) = self.dims(l1.dims(), [gamma.len(), beta.len()])?;
        // y = x·a + b per channel, a = r·γ, b = β − μ·r·γ.
        let y = normalise(
            x,
            c,
            hw,
            self.groups,
            self.eps,
            gamma,
            beta,
            |_, _, a, b, v, o| {
                for (o, &v) in o.iter_mut().zip(v) {
                    *o = v * a + b;
                }
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, hw) = self.dims(x.dims(), [gamma.elem_count(), gamma.elem_count()])?;
        let cg = c / self.groups;
        let dy = dy.contiguous()?;
        let gamma_v = gamma.to_vec1::<f32>()?;
        let (dx, sums) = with_f32(x, |xv| {
            with_f32(&dy, |g| {
                let mut dx = vec![0f32; xv.len()];
                // Per (sample, channel): (Σ dy, Σ dy·x̂), for dβ and dγ.
                let mut sums = vec![(0f64, 0f64); n * c];
                if cg * hw > 0 {
                    dx.par_chunks_mut(cg * hw)
                        .zip(sums.par_chunks_mut(cg))
                        .enumerate()
                        .for_each(|(ng, (out, sums))| {
                            let span = ng * cg * hw..(ng + 1) * cg * hw;
                            let (v, d) = (&xv[span.clone()], &g[span]);
                            let (mean, r) = group_stats(v, self.eps);
                            let c0 = (ng % self.groups) * cg;
                            // Σ dx̂ and Σ dx̂·x̂ over the group.
                            let (mut a, mut b) = (0f64, 0f64);
                            for (j, s) in sums.iter_mut().enumerate() {
                                let (v, d) = (&v[j * hw..][..hw], &d[j * hw..][..hw]);
                                let sd: f64 = d.iter().map(|&d| d as f64).sum();
                                let sdx: f64 = (v.iter().zip(d))
                                    .map(|(&v, &d)| d as f64 * (v as f64 - mean))
                                    .sum::<f64>()
                                    * r;
                                *s = (sd, sdx);
                                let gm = gamma_v[c0 + j] as f64;
                                a += gm * sd;
                                b += gm * sdx;
                            }
                            let m = (cg * hw) as f64;
                            let (a, b) = (a / m, b / m);
                            for (j, out) in out.chunks_mut(hw).enumerate() {
                                let gm = gamma_v[c0 + j] as f64;
                                let (v, d) = (&v[j * hw..][..hw], &d[j * hw..][..hw]);
                                for ((o, &v), &d) in out.iter_mut().zip(v).zip(d) {
                                    let xh = (v as f64 - mean) * r;
                                    *o = (r * (d as f64 * gm - a - xh * b)) as f32;
                                }
                            }
                        });
                }
                (dx, sums)
            })
        })??;
        let (mut dgamma, mut dbeta) = (vec![0f64; c], vec![0f64; c]);
        for (i, &(sd, sdx)) in sums.iter().enumerate() {
            dbeta[i % c] += sd;
            dgamma[i % c] += sdx;
        }
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), dev)?),
            Some(Tensor::from_vec(to_f32(dgamma), gamma.dims(), dev)?),
            Some(Tensor::from_vec(to_f32(dbeta), gamma.dims(), dev)?),
        ))
    }
}

/// `GroupNorm(groups, C)` with eps 1e-5: per sample and group, subtract the mean and divide by
/// √(biased variance + eps), then the per-channel affine `weight`, `bias` when given.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::arange(0f32, 32., &Device::Cpu)?.reshape((1, 8, 2, 2))?;
/// let y = dia_nn::group_norm(&x, 4, None, None, 1e-5)?;
/// // Each group of 2 channels x 4 pixels has mean 0 after normalisation.
/// let g0: f32 = y.flatten_all()?.narrow(0, 0, 8)?.sum_all()?.to_scalar()?;
/// assert!(g0.abs() < 1e-5);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn group_norm(
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if groups == 0 || c % groups != 0 {
        bail!("group norm: {c} channels cannot be split into {groups} groups")
    }
    if let (Some(wt), Some(b)) = (weight, bias) {
        if crate::kernels::use_fast(&[x, wt, b]) {
            let op = GroupNormOp { groups, eps };
            return x.contiguous()?.apply_op3(
                &wt.flatten_all()?.contiguous()?,
                &b.flatten_all()?.contiguous()?,
                op,
            );
        }
    }
    let g = x.reshape((n, groups, (c / groups) * h * w))?;
    let mean = g.mean_keepdim(2)?;
    let centred = g.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(2)?;
    let y = centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .reshape((n, c, h, w))?;
    let y = match weight {
        Some(wt) => y.broadcast_mul(&wt.reshape((1, c, 1, 1))?)?,
        None => y,
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, c, 1, 1))?),
        None => Ok(y),
    }
}

/// The tail of the UNet's `Block` for inference: group norm, then `y·scale + shift` per (sample,
/// channel) when given (`scale` already holds the block's `scale + 1`), then SiLU, in one pass
/// that writes one tensor instead of four (`group_norm_silu`). No backward: it runs only where
/// no operand records a gradient (dissolving, sampling).
struct GroupNormSilu {
    groups: usize,
    eps: f64,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    scale_shift: Option<(Vec<f32>, Vec<f32>)>,
}

impl CustomOp1 for GroupNormSilu {
    fn name(&self) -> &'static str {
        "dia-group-norm-silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "group norm")?;
        let (n, c, hw) = nchw(l.dims(), "group norm")?;
        if self.gamma.len() != c || self.beta.len() != c {
            bail!(
                "group norm: {c} channels but an affine of {}",
                self.gamma.len()
            )
        }
        if let Some((sc, sh)) = &self.scale_shift {
            if sc.len() != n * c || sh.len() != n * c {
                bail!(
                    "group norm: scale/shift of {}/{} for {n}x{c}",
                    sc.len(),
                    sh.len()
                )
            }
        }
        let (gamma, beta) = (&self.gamma, &self.beta);
        let y = normalise(
            x,
            c,
            hw,
            self.groups,
            self.eps,
            gamma,
            beta,
            |s, ch, a, b, v, o| {
                let film = self
                    .scale_shift
                    .as_ref()
                    .map(|(sc, sh)| (sc[s * c + ch], sh[s * c + ch]));
                silu_plane(v, a, b, film, o);
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}

/// One channel plane of [`GroupNormSilu`]: `t = v·a + b`, then `t·scale + shift` when given,
/// then `t / (1 + exp(−t))` — the f32 operations of the candle ops of `group_norm_silu`'s other
/// path in their order, with the vectorisable [`fast_exp::exp`] for libm's `expf` (within 2 ulp
/// of it), in AVX2 code where the CPU has it.
fn silu_plane(v: &[f32], a: f32, b: f32, film: Option<(f32, f32)>, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::cpu_isa().is_some() {
        // SAFETY: the CPU has AVX2 and FMA (cpu_isa).
        return unsafe { silu_plane_avx2(v, a, b, film, o) };
    }
    silu_plane_body(v, a, b, film, o)
}

/// [`silu_plane`] compiled for AVX2: the same operations (Rust never fuses a multiply and an
/// add), eight lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_plane_avx2(v: &[f32], a: f32, b: f32, film: Option<(f32, f32)>, o: &mut [f32]) {
    silu_plane_body(v, a, b, film, o)
}

#[inline(always)]
fn silu_plane_body(v: &[f32], a: f32, b: f32, film: Option<(f32, f32)>, o: &mut [f32]) {
    let silu = |t: f32| t / (1.0 + fast_exp::exp(-t));
    match film {
        Some((sc, sh)) => {
            for (o, &v) in o.iter_mut().zip(v) {
                *o = silu((v * a + b) * sc + sh);
            }
        }
        None => {
            for (o, &v) in o.iter_mut().zip(v) {
                *o = silu(v * a + b);
            }
        }
    }
}

/// `silu(group_norm(x)·scale + shift)` (or `silu(group_norm(x))` without `scale_shift`): the
/// end of the UNet's `Block` (spec §2.1), whose `scale` is the time MLP's `scale + 1`, of shape
/// (N, C, 1, 1) like `shift`. Where nothing records a gradient, on the CPU in f32, it is one
/// pass over `x`; otherwise [`group_norm`] and candle ops, differentiable. The two agree to a
/// few ulp (the one pass computes `exp` with its own polynomial, vectorised).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let x = Tensor::arange(0f32, 32., &Device::Cpu)?.reshape((1, 8, 2, 2))?;
/// let g = Tensor::ones(8, DType::F32, &Device::Cpu)?;
/// let b = Tensor::zeros(8, DType::F32, &Device::Cpu)?;
/// let y = dia_nn::group_norm_silu(&x, 4, &g, &b, None, 1e-5)?;
/// let reference = dia_nn::group_norm(&x, 4, Some(&g), Some(&b), 1e-5)?.silu()?;
/// assert!(dia_nn::kernels::rel_diff(&y, &reference)? < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn group_norm_silu(
    x: &Tensor,
    groups: usize,
    weight: &Tensor,
    bias: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    eps: f64,
) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if groups == 0 || c % groups != 0 {
        bail!("group norm: {c} channels cannot be split into {groups} groups")
    }
    let mut operands = vec![x, weight, bias];
    if let Some((sc, sh)) = scale_shift {
        operands.extend([sc, sh]);
    }
    if crate::kernels::use_fast(&operands) && !operands.iter().any(|t| t.track_op()) {
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let op = GroupNormSilu {
            groups,
            eps,
            gamma: values(weight)?,
            beta: values(bias)?,
            scale_shift: match scale_shift {
                Some((sc, sh)) => Some((values(sc)?, values(sh)?)),
                None => None,
            },
        };
        return x.contiguous()?.apply_op1_no_bwd(&op);
    }
    let y = group_norm(x, groups, Some(weight), Some(bias), eps)?;
    let y = match scale_shift {
        Some((sc, sh)) => y.broadcast_mul(sc)?.broadcast_add(sh)?,
        None => y,
    };
    y.silu()
}

/// The library's `WeightStandardizedConv2d`: per output channel
/// `w' = (w − mean(w)) / √(var(w, biased) + eps)` over (in, kh, kw), eps = 1e-5 in f32, then a
/// convolution with `w'` ([`standardize_weight`]).
pub fn weight_standardized_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d(x, &standardize_weight(weight)?, bias, cfg)
}

/// The standardised weight `w'` of [`weight_standardized_conv2d`], for a layer that computes
/// it once (a frozen UNet block).
pub fn standardize_weight(weight: &Tensor) -> Result<Tensor> {
    let (cout, cin, kh, kw) = weight.dims4()?;
    let flat = weight.reshape((cout, cin * kh * kw))?;
    let mean = flat.mean_keepdim(1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    centred
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .reshape((cout, cin, kh, kw))
}
