//! The building blocks of the 0.27.12 UNet (spec §2.1): convolutions, the channel-wise
//! `LayerNorm`, `Block` (weight-standardised conv, GroupNorm, scale/shift, SiLU), `ResnetBlock`
//! and the sinusoidal time embedding.
//!
//! Every layer takes its tensors from dia-nn's [`Params`] under the library's parameter names, so a
//! converted PyTorch checkpoint loads without renaming.

use candle_core::{Module, Result as CResult, Tensor};
use dia_nn::{
    group_norm_silu, standardize_weight, weight_standardized_conv2d, Conv2d, Conv2dConfig, Init,
    Linear, Params,
};

use crate::error::Result;

/// `nn.Conv2d(cin, cout, k, stride, padding)`: `{name}.weight` (cout, cin, k, k) and, when
/// `bias`, `{name}.bias` (not for `to_qkv`), as plain tensors (the trainer makes its own
/// variables, and a dissolving forward then records no autograd graph).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    w: &mut Params,
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    bias: bool,
) -> Result<Conv2d> {
    let weight = w.get(&format!("{name}.weight"), &[cout, cin, k, k], Init::Weight)?;
    let bias = match bias {
        true => Some(w.get(&format!("{name}.bias"), &[cout], Init::Bias(cin * k * k))?),
        false => None,
    };
    Ok(Conv2d::new(
        weight,
        bias,
        Conv2dConfig::new(stride, padding),
    ))
}

/// `nn.Linear(inp, out)`, as plain tensors.
pub(crate) fn linear(w: &mut Params, name: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = w.get(&format!("{name}.weight"), &[out, inp], Init::Weight)?;
    let bias = w.get(&format!("{name}.bias"), &[out], Init::Bias(inp))?;
    Ok(Linear::new(weight, bias))
}

/// The library's channel-wise `LayerNorm`: `(x − mean_c)/√(var_c + 1e-5) · g`, biased variance
/// over the channel axis, gain `g` of shape (1, C, 1, 1) and no bias.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    g: Tensor,
}

impl LayerNorm {
    /// Takes `{name}.g`.
    pub fn new(w: &mut Params, name: &str, dim: usize) -> Result<Self> {
        Ok(Self {
            g: w.get(&format!("{name}.g"), &[1, dim, 1, 1], Init::Ones)?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        // One fused op on the CPU (dia-nn's layer_norm module); the same formula elsewhere.
        dia_nn::channel_layer_norm(x, &self.g, 1e-5)
    }
}

/// `Block`: weight-standardised 3×3 conv (padding 1, bias), GroupNorm(groups), the optional
/// `x·(scale + 1) + shift`, SiLU.
#[derive(Clone, Debug)]
pub struct Block {
    proj_weight: Tensor,
    proj_bias: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    groups: usize,
    /// The convolution on the standardised weight, kept by [`Block::freeze`].
    standardized: Option<Conv2d>,
}

impl Block {
    /// Takes `{name}.proj.{weight,bias}` and `{name}.norm.{weight,bias}`.
    pub fn new(w: &mut Params, name: &str, din: usize, dout: usize, groups: usize) -> Result<Self> {
        let proj_weight = w.get(
            &format!("{name}.proj.weight"),
            &[dout, din, 3, 3],
            Init::Weight,
        )?;
        let proj_bias = w.get(&format!("{name}.proj.bias"), &[dout], Init::Bias(din * 9))?;
        let norm_weight = w.get(&format!("{name}.norm.weight"), &[dout], Init::Ones)?;
        let norm_bias = w.get(&format!("{name}.norm.bias"), &[dout], Init::Zeros)?;
        Ok(Self {
            proj_weight,
            proj_bias,
            norm_weight,
            norm_bias,
            groups,
            standardized: None,
        })
    }

    /// The block with its weights declared fixed ([`Conv2d::freeze`]): the weight is
    /// standardised once, here, and its Winograd filters kept from the first forward. A block
    /// on trainable variables is returned unchanged.
    pub fn freeze(mut self) -> CResult<Self> {
        if !self.proj_weight.is_variable() {
            let w = standardize_weight(&self.proj_weight)?;
            let conv = Conv2d::new(w, Some(self.proj_bias.clone()), Conv2dConfig::new(1, 1));
            self.standardized = Some(conv.freeze());
        }
        Ok(self)
    }

    /// The block, with `(scale, shift)` of shape (B, C, 1, 1) when given.
    pub fn forward(&self, x: &Tensor, scale_shift: Option<(&Tensor, &Tensor)>) -> CResult<Tensor> {
        let x = match &self.standardized {
            Some(conv) => conv.forward(x)?,
            None => weight_standardized_conv2d(
                x,
                &self.proj_weight,
                Some(&self.proj_bias),
                Conv2dConfig::new(1, 1),
            )?,
        };
        // The time MLP's `scale + 1` (spec §2.1), then one op on the CPU when dissolving.
        let scale1 = scale_shift.map(|(scale, _)| scale + 1.0).transpose()?;
        let film = scale1.as_ref().zip(scale_shift.map(|(_, shift)| shift));
        group_norm_silu(
            &x,
            self.groups,
            &self.norm_weight,
            &self.norm_bias,
            film,
            1e-5,
        )
    }
}

/// `ResnetBlock(din, dout)`: the time MLP (SiLU, Linear → 2·dout) gives (scale, shift) for the
/// first block; the output is `block2(block1(x)) + res_conv(x)`, `res_conv` a 1×1 conv when
/// the channel count changes.
#[derive(Clone, Debug)]
pub struct ResnetBlock {
    mlp: Linear,
    block1: Block,
    block2: Block,
    res_conv: Option<Conv2d>,
    dout: usize,
}

impl ResnetBlock {
    /// Takes `{name}.mlp.1`, `{name}.block1`, `{name}.block2` and `{name}.res_conv`.
    pub fn new(
        w: &mut Params,
        name: &str,
        din: usize,
        dout: usize,
        time_dim: usize,
        groups: usize,
    ) -> Result<Self> {
        let mlp = linear(w, &format!("{name}.mlp.1"), time_dim, 2 * dout)?;
        let block1 = Block::new(w, &format!("{name}.block1"), din, dout, groups)?;
        let block2 = Block::new(w, &format!("{name}.block2"), dout, dout, groups)?;
        let res_conv = if din != dout {
            Some(conv(
                w,
                &format!("{name}.res_conv"),
                din,
                dout,
                1,
                1,
                0,
                true,
            )?)
        } else {
            None
        };
        Ok(Self {
            mlp,
            block1,
            block2,
            res_conv,
            dout,
        })
    }

    /// The block with its weights declared fixed ([`Block::freeze`], [`Conv2d::freeze`]).
    pub fn freeze(self) -> CResult<Self> {
        Ok(Self {
            block1: self.block1.freeze()?,
            block2: self.block2.freeze()?,
            res_conv: self.res_conv.map(Conv2d::freeze),
            ..self
        })
    }

    /// The block on `x` (B, din, H, W) with the time embedding `temb` (B, time_dim).
    pub fn forward(&self, x: &Tensor, temb: &Tensor) -> CResult<Tensor> {
        let ss = self.mlp.forward(&temb.silu()?)?;
        let b = ss.dim(0)?;
        // `chunk(2, dim=1)`: scale first, then shift (spec §13.1).
        let scale = ss.narrow(1, 0, self.dout)?.reshape((b, self.dout, 1, 1))?;
        let shift = ss
            .narrow(1, self.dout, self.dout)?
            .reshape((b, self.dout, 1, 1))?;
        let h = self.block1.forward(x, Some((&scale, &shift)))?;
        let h = self.block2.forward(&h, None)?;
        match &self.res_conv {
            Some(c) => h + c.forward(x)?,
            None => h + x,
        }
    }
}

/// `SinusoidalPosEmb(dim)`: for half = dim/2 and `f_i = exp(−i·ln(10000)/(half − 1))`, the
/// embedding `[sin(t·f), cos(t·f)]`, computed in f32 as PyTorch does.
pub fn sinusoidal_embedding(
    t: &[f32],
    dim: usize,
    device: &candle_core::Device,
) -> CResult<Tensor> {
    let half = dim / 2;
    let step = (10000f64.ln() / (half.max(2) - 1) as f64) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| (i as f32 * -step).exp()).collect();
    let mut out = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        out.extend(freqs.iter().map(|&f| (ti * f).sin()));
        out.extend(freqs.iter().map(|&f| (ti * f).cos()));
    }
    Tensor::from_vec(out, (t.len(), 2 * half), device)
}

/// Nearest-neighbour ×2 upsampling as a broadcast, so that its backward is a plain sum.
pub fn upsample_nearest2x(x: &Tensor) -> CResult<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, 2, w, 2))?
        .reshape((n, c, 2 * h, 2 * w))
}
