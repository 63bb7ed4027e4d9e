//! The channel-wise LayerNorm of the DDPM UNet (`denoising_diffusion_pytorch` 0.27.12's
//! `LayerNorm`, spec §2.1): per sample and pixel, `(x − mean_c)/√(var_c + eps) · g_c` with the
//! biased variance over the channel axis, a gain and no bias.
//!
//! On the CPU with f32 it is one custom op with its analytic backward: the composition of
//! candle ops reduces over the channel axis (a strided reduction, on one thread) twice and makes
//! six more passes; in the UNet's attention blocks it was about 8 % of a dissolving step
//! (issue #17). Elsewhere it is [`portable`].

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{cpu_slice, nchw, with_f32};

/// The channel LayerNorm of `x (N, C, H, W)` with gain `g` (C values, any shape), differentiable
/// on every device.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32]], [[3.]]]], &Device::Cpu)?; // (1, 2, 1, 1)
/// let g = Tensor::new(&[1f32, 2.], &Device::Cpu)?;
/// let y = dia_nn::channel_layer_norm(&x, &g, 1e-5)?.flatten_all()?.to_vec1::<f32>()?;
/// assert!((y[0] + 1.0).abs() < 1e-4 && (y[1] - 2.0).abs() < 1e-4);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn channel_layer_norm(x: &Tensor, g: &Tensor, eps: f64) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if g.elem_count() != c {
        bail!("layer norm: {c} channels but a gain of {:?}", g.dims())
    }
    if crate::kernels::use_fast(&[x, g]) {
        return x
            .contiguous()?
            .apply_op2(&g.flatten_all()?.contiguous()?, LayerNormOp { eps });
    }
    portable(x, g, eps)
}

/// The portable channel LayerNorm, from candle ops.
pub fn portable(x: &Tensor, g: &Tensor, eps: f64) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    let mean = x.mean_keepdim(1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    centred
        .broadcast_mul(&(var + eps)?.sqrt()?.recip()?)?
        .broadcast_mul(&g.reshape((1, c, 1, 1))?)
}

/// The fused op: per sample, μ and r = 1/√(var + eps) of every pixel over the channels (in
/// f64, accumulated channel by channel so that the loops run along contiguous pixels). The
/// backward recomputes them and returns `dx = r·(dx̂ − mean_c(dx̂) − x̂·mean_c(dx̂·x̂))`
/// (`dx̂ = dy·g`) and `dg = Σ dy·x̂`.
struct LayerNormOp {
    eps: f64,
}

impl LayerNormOp {
    /// μ and r of every pixel of one sample (C planes of `hw` values).
    fn stats(&self, v: &[f32], c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
        let mut mean = vec![0f64; hw];
        for plane in v.chunks(hw) {
            for (m, &x) in mean.iter_mut().zip(plane) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= c as f64);
        let mut var = vec![0f64; hw];
        for plane in v.chunks(hw) {
            for ((s, &x), m) in var.iter_mut().zip(plane).zip(&mean) {
                *s += (x as f64 - m).powi(2);
            }
        }
        let r = var
            .iter()
            .map(|s| 1.0 / (s / c as f64 + self.eps).sqrt())
            .collect();
        (mean, r)
    }
}

impl CustomOp2 for LayerNormOp {
    fn name(&self) -> &'static str {
        "dia-channel-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (
            cpu_slice(s1, l1, "layer norm")?,
            cpu_slice(s2, l2, "layer norm")?,
        );
        let (_, c, hw) = nchw(l1.dims(), "layer norm")?;
        if g.len() != c {
            bail!("layer norm: {c} channels but {} gains", g.len())
        }
        let mut y = vec![0f32; x.len()];
        if c * hw > 0 {
            y.par_chunks_mut(c * hw)
                .zip(x.par_chunks(c * hw))
                .for_each(|(out, v)| {
                    let (mean, r) = self.stats(v, c, hw);
                    for ((o, v), &gc) in out.chunks_mut(hw).zip(v.chunks(hw)).zip(g) {
                        for (((o, &x), m), r) in o.iter_mut().zip(v).zip(&mean).zip(&r) {
                            *o = ((x as f64 - m) * r) as f32 * gc;
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let dy = dy.contiguous()?;
        let gv = g.to_vec1::<f32>()?;
        let (dx, dg) = with_f32(x, |xv| {
            with_f32(&dy, |d| {
                let mut dx = vec![0f32; xv.len()];
                // Per (sample, channel): Σ dy·x̂, for dg.
                let mut dg = vec![0f64; n * c];
                if c * hw > 0 {
                    dx.par_chunks_mut(c * hw)
                        .zip(dg.par_chunks_mut(c))
                        .enumerate()
                        .for_each(|(s, (out, dg))| {
                            let span = s * c * hw..(s + 1) * c * hw;
                            let (v, d) = (&xv[span.clone()], &d[span]);
                            let (mean, r) = self.stats(v, c, hw);
                            // Per pixel: Σ_c dx̂ and Σ_c dx̂·x̂.
                            let (mut a, mut b) = (vec![0f64; hw], vec![0f64; hw]);
                            for (ch, dg) in dg.iter_mut().enumerate() {
                                let (vp, dp) = (&v[ch * hw..][..hw], &d[ch * hw..][..hw]);
                                let gc = gv[ch] as f64;
                                for p in 0..hw {
                                    let xh = (vp[p] as f64 - mean[p]) * r[p];
                                    let dyx = dp[p] as f64 * xh;
                                    *dg += dyx;
                                    a[p] += gc * dp[p] as f64;
                                    b[p] += gc * dyx;
                                }
                            }
                            for (ch, o) in out.chunks_mut(hw).enumerate() {
                                let (vp, dp) = (&v[ch * hw..][..hw], &d[ch * hw..][..hw]);
                                let gc = gv[ch] as f64;
                                for p in 0..hw {
                                    let xh = (vp[p] as f64 - mean[p]) * r[p];
                                    let (am, bm) = (a[p] / c as f64, b[p] / c as f64);
                                    o[p] = (r[p] * (dp[p] as f64 * gc - am - xh * bm)) as f32;
                                }
                            }
                        });
                }
                let mut total = vec![0f64; c];
                for (i, v) in dg.iter().enumerate() {
                    total[i % c] += v;
                }
                (dx, total.into_iter().map(|v| v as f32).collect::<Vec<_>>())
            })
        })??;
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), x.device())?),
            Some(Tensor::from_vec(dg, g.dims(), x.device())?),
        ))
    }
}
