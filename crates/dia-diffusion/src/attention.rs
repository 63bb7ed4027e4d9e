//! The two attention layers of the 0.27.12 UNet (spec §2.1, channel layouts §13.1), each wrapped
//! as `Residual(PreNorm(·))`: `x + attn(LayerNorm(x))`.
//!
//! - [`LinearAttention`] (every resolution): q softmaxed over the feature axis, k over the
//!   spatial axis, `q·32^−½`, `v/(H·W)`, `context = k·vᵀ`, `out = contextᵀ·q`, then a 1×1 conv
//!   and a `LayerNorm`.
//! - [`Attention`] (mid block): q and k L2-normalised along the **spatial** axis (the 0.27.12
//!   quirk), similarity scaled by 10, softmax over keys, then a 1×1 conv.

use candle_core::{Module, Result as CResult, Tensor};
use candle_nn::ops::softmax;

use crate::error::Result;
use crate::layers::{conv, LayerNorm};
use dia_nn::{Conv2d, Params};

/// Attention heads (the library's default).
pub const HEADS: usize = 4;
/// Features per head (the library's default).
pub const DIM_HEAD: usize = 32;
const HIDDEN: usize = HEADS * DIM_HEAD;

/// Splits the `to_qkv` output (B, 3·128, H, W) into q, k, v of shape (B, heads, 32, H·W).
fn split_qkv(qkv: &Tensor) -> CResult<(Tensor, Tensor, Tensor)> {
    let (b, _, h, w) = qkv.dims4()?;
    let qkv = qkv.reshape((b, 3, HEADS, DIM_HEAD, h * w))?;
    let part = |i| qkv.narrow(1, i, 1)?.squeeze(1);
    Ok((part(0)?, part(1)?, part(2)?))
}

/// What both layers start with: `PreNorm`'s LayerNorm (`{name}.fn.norm`) and the bias-free 1×1
/// `to_qkv` conv (`{name}.fn.fn.to_qkv`).
#[derive(Clone, Debug)]
struct NormQkv {
    norm: LayerNorm,
    to_qkv: Conv2d,
}

impl NormQkv {
    fn new(w: &mut Params, name: &str, dim: usize) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(w, &format!("{name}.fn.norm"), dim)?,
            to_qkv: conv(
                w,
                &format!("{name}.fn.fn.to_qkv"),
                dim,
                3 * HIDDEN,
                1,
                1,
                0,
                false,
            )?,
        })
    }

    /// q, k, v of `LayerNorm(x)`, each (B, heads, 32, H·W).
    fn qkv(&self, x: &Tensor) -> CResult<(Tensor, Tensor, Tensor)> {
        split_qkv(&self.to_qkv.forward(&self.norm.forward(x)?)?)
    }
}

/// The 1×1 output projection (with bias) from the heads back to `dim` channels.
fn to_out(w: &mut Params, name: &str, dim: usize) -> Result<Conv2d> {
    conv(w, name, HIDDEN, dim, 1, 1, 0, true)
}

/// `Residual(PreNorm(dim, LinearAttention(dim)))`.
#[derive(Clone, Debug)]
pub struct LinearAttention {
    qkv: NormQkv,
    to_out: Conv2d,
    out_norm: LayerNorm,
}

impl LinearAttention {
    /// Takes `{name}.fn.norm.g`, `{name}.fn.fn.to_qkv`, `{name}.fn.fn.to_out.{0,1}`.
    pub fn new(w: &mut Params, name: &str, dim: usize) -> Result<Self> {
        Ok(Self {
            qkv: NormQkv::new(w, name, dim)?,
            to_out: to_out(w, &format!("{name}.fn.fn.to_out.0"), dim)?,
            out_norm: LayerNorm::new(w, &format!("{name}.fn.fn.to_out.1"), dim)?,
        })
    }
}

impl Module for LinearAttention {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let qkv = self.qkv.to_qkv.forward(&self.qkv.norm.forward(x)?)?;
        // The softmaxes and the two products: one op on the CPU when dissolving.
        let out = dia_nn::linear_attention(&qkv, HEADS, DIM_HEAD)?;
        let y = self.out_norm.forward(&self.to_out.forward(&out)?)?;
        y + x
    }
}

/// `Residual(PreNorm(dim, Attention(dim)))` of the mid block.
#[derive(Clone, Debug)]
pub struct Attention {
    qkv: NormQkv,
    to_out: Conv2d,
}

/// `F.normalize(t, dim=-1)`: divide by `max(‖t‖₂, 1e-12)` along the last axis.
fn l2_normalize_last(t: &Tensor) -> CResult<Tensor> {
    let norm = t
        .sqr()?
        .sum_keepdim(candle_core::D::Minus1)?
        .sqrt()?
        .maximum(1e-12)?;
    t.broadcast_div(&norm)
}

impl Attention {
    /// Takes `{name}.fn.norm.g`, `{name}.fn.fn.to_qkv`, `{name}.fn.fn.to_out`.
    pub fn new(w: &mut Params, name: &str, dim: usize) -> Result<Self> {
        Ok(Self {
            qkv: NormQkv::new(w, name, dim)?,
            to_out: to_out(w, &format!("{name}.fn.fn.to_out"), dim)?,
        })
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (q, k, v) = self.qkv.qkv(x)?;
        // The 0.27.12 quirk: normalised along the token axis n, not the feature axis d.
        let q = l2_normalize_last(&q)?;
        let k = l2_normalize_last(&k)?;
        // sim[i, j] = 10·Σ_d q[d, i]·k[d, j], softmax over j.
        let sim = (q.t()?.contiguous()?.matmul(&k.contiguous()?)? * 10.0)?;
        let attn = softmax(&sim, 3)?;
        // out[d, i] = Σ_j v[d, j]·attn[i, j], written back as channel h·32 + d.
        let out = v.contiguous()?.matmul(&attn.t()?.contiguous()?)?;
        let out = out.reshape((b, HIDDEN, h, w))?;
        self.to_out.forward(&out)? + x
    }
}
