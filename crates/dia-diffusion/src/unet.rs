//! The UNet of `denoising_diffusion_pytorch` 0.27.12 (spec §2.1), with its parameter names.
//!
//! `Unet(dim=64, dim_mults=(1,2,4,8))` has 36,251,779 parameters; `dim`, `dim_mults` and
//! `channels` are configurable so tests can use narrow variants.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Module, Result as CResult, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::attention::{Attention, LinearAttention};
use crate::error::{Error, Result};
use crate::layers::{conv, linear, sinusoidal_embedding, upsample_nearest2x, ResnetBlock};
use dia_nn::{Conv2d, Linear, Params, Source};

/// The UNet's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnetConfig {
    /// Base width (`dim`); the paper's DDPMs use 64.
    pub dim: usize,
    /// Width multipliers per resolution (`dim_mults`).
    #[serde(default = "default_mults")]
    pub dim_mults: Vec<usize>,
    /// Image channels.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// GroupNorm groups (`resnet_block_groups`).
    #[serde(default = "default_groups")]
    pub groups: usize,
}

fn default_mults() -> Vec<usize> {
    vec![1, 2, 4, 8]
}
fn default_channels() -> usize {
    3
}
fn default_groups() -> usize {
    8
}

impl Default for UnetConfig {
    /// The paper's `Unet(dim=64, dim_mults=(1,2,4,8))`.
    fn default() -> Self {
        Self {
            dim: 64,
            dim_mults: default_mults(),
            channels: 3,
            groups: 8,
        }
    }
}

impl UnetConfig {
    /// Checks that every width is divisible by the GroupNorm groups and the image size by the
    /// total downsampling.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim_mults.is_empty() || self.channels == 0 || self.groups == 0 {
            return Err(Error::Config(format!(
                "unet: dim, dim_mults, channels and groups must be non-zero: {self:?}"
            )));
        }
        if self.dim_mults.contains(&0) {
            return Err(Error::Config(format!(
                "unet.dim_mults: every multiplier must be at least 1, got {:?}",
                self.dim_mults
            )));
        }
        if !self.dim.is_multiple_of(2) || self.dim < 4 {
            return Err(Error::Config(format!(
                "unet: dim {} must be even and at least 4 (sinusoidal embedding)",
                self.dim
            )));
        }
        for w in self.widths() {
            if w % self.groups != 0 {
                return Err(Error::Config(format!(
                    "unet: width {w} is not divisible by {} GroupNorm groups",
                    self.groups
                )));
            }
        }
        Ok(())
    }

    /// `dims = [dim, dim·m for m in dim_mults]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.dim)
            .chain(self.dim_mults.iter().map(|m| self.dim * m))
            .collect()
    }

    /// The factor an image side must be divisible by (2 per downsampling stage).
    pub fn size_multiple(&self) -> usize {
        1 << (self.dim_mults.len() - 1)
    }
}

type DownStage = (ResnetBlock, ResnetBlock, LinearAttention, Conv2d);
type UpStage = (ResnetBlock, ResnetBlock, LinearAttention, Conv2d, bool);

/// The noise-prediction network ε_θ(x, t).
#[derive(Clone, Debug)]
pub struct Unet {
    cfg: UnetConfig,
    device: Device,
    init_conv: Conv2d,
    time_1: Linear,
    time_3: Linear,
    downs: Vec<DownStage>,
    mid_block1: ResnetBlock,
    mid_attn: Attention,
    mid_block2: ResnetBlock,
    ups: Vec<UpStage>,
    final_res_block: ResnetBlock,
    final_conv: Conv2d,
}

impl Unet {
    /// Builds the UNet, taking every tensor from `w` (fresh or loaded).
    pub fn build(cfg: &UnetConfig, w: &mut Params) -> Result<Self> {
        cfg.validate()?;
        let dim = cfg.dim;
        let g = cfg.groups;
        let time_dim = 4 * dim;
        let dims = cfg.widths();
        let in_out: Vec<(usize, usize)> = dims.windows(2).map(|p| (p[0], p[1])).collect();
        let n = in_out.len();

        let init_conv = conv(w, "init_conv", cfg.channels, dim, 7, 1, 3, true)?;
        let time_1 = linear(w, "time_mlp.1", dim, time_dim)?;
        let time_3 = linear(w, "time_mlp.3", time_dim, time_dim)?;
        let mut downs = Vec::with_capacity(n);
        for (i, &(din, dout)) in in_out.iter().enumerate() {
            let p = format!("downs.{i}");
            let b1 = ResnetBlock::new(w, &format!("{p}.0"), din, din, time_dim, g)?;
            let b2 = ResnetBlock::new(w, &format!("{p}.1"), din, din, time_dim, g)?;
            let attn = LinearAttention::new(w, &format!("{p}.2"), din)?;
            let down = if i + 1 < n {
                conv(w, &format!("{p}.3"), din, dout, 4, 2, 1, true)?
            } else {
                conv(w, &format!("{p}.3"), din, dout, 3, 1, 1, true)?
            };
            downs.push((b1, b2, attn, down));
        }
        let mid = dims[n];
        let mid_block1 = ResnetBlock::new(w, "mid_block1", mid, mid, time_dim, g)?;
        let mid_attn = Attention::new(w, "mid_attn", mid)?;
        let mid_block2 = ResnetBlock::new(w, "mid_block2", mid, mid, time_dim, g)?;
        let mut ups = Vec::with_capacity(n);
        for (j, &(din, dout)) in in_out.iter().rev().enumerate() {
            let p = format!("ups.{j}");
            let b1 = ResnetBlock::new(w, &format!("{p}.0"), dout + din, dout, time_dim, g)?;
            let b2 = ResnetBlock::new(w, &format!("{p}.1"), dout + din, dout, time_dim, g)?;
            let attn = LinearAttention::new(w, &format!("{p}.2"), dout)?;
            let last = j + 1 == n;
            let up = if last {
                conv(w, &format!("{p}.3"), dout, din, 3, 1, 1, true)?
            } else {
                conv(w, &format!("{p}.3.1"), dout, din, 3, 1, 1, true)?
            };
            ups.push((b1, b2, attn, up, !last));
        }
        let final_res_block = ResnetBlock::new(w, "final_res_block", 2 * dim, dim, time_dim, g)?;
        let final_conv = conv(w, "final_conv", dim, cfg.channels, 1, 1, 0, true)?;
        Ok(Self {
            cfg: cfg.clone(),
            device: w.device().clone(),
            init_conv,
            time_1,
            time_3,
            downs,
            mid_block1,
            mid_attn,
            mid_block2,
            ups,
            final_res_block,
            final_conv,
        })
    }

    /// A freshly initialised UNet (PyTorch's default initialisers, drawn from `rng`) and its
    /// tensors by name.
    pub fn init(
        cfg: &UnetConfig,
        rng: &mut dyn RngCore,
        device: &Device,
    ) -> Result<(Self, BTreeMap<String, Tensor>)> {
        let mut w = Params::new(Source::Init(rng), device);
        let unet = Self::build(cfg, &mut w)?;
        Ok((unet, w.finish(&[])?.0))
    }

    /// The UNet on loaded tensors; every missing, unexpected or mis-shaped tensor is reported.
    pub fn from_tensors(
        cfg: &UnetConfig,
        tensors: &HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        let mut w = Params::new(Source::Tensors(tensors), device);
        let unet = Self::build(cfg, &mut w)?;
        w.finish(&[])?;
        Ok(unet)
    }

    /// The configuration.
    pub fn config(&self) -> &UnetConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The UNet with its weights declared fixed for as long as it lives, as a dissolver's are:
    /// every 3 × 3 layer keeps its standardised weight and its Winograd filters instead of
    /// recomputing them per call (bit-equal results; [`dia_nn::Conv2d::freeze`] says when not
    /// to). Costs 4× the 3 × 3 weights in memory once the CPU forward has run (about 520 MB
    /// for the paper's UNet). Layers on trainable variables are left as they are.
    pub fn freeze(self) -> CResult<Self> {
        let downs = self
            .downs
            .into_iter()
            .map(|(b1, b2, attn, down)| Ok((b1.freeze()?, b2.freeze()?, attn, down.freeze())))
            .collect::<CResult<_>>()?;
        let ups = self
            .ups
            .into_iter()
            .map(|(b1, b2, attn, up, upsample)| {
                Ok((b1.freeze()?, b2.freeze()?, attn, up.freeze(), upsample))
            })
            .collect::<CResult<_>>()?;
        Ok(Self {
            init_conv: self.init_conv.freeze(),
            downs,
            mid_block1: self.mid_block1.freeze()?,
            mid_block2: self.mid_block2.freeze()?,
            ups,
            final_res_block: self.final_res_block.freeze()?,
            final_conv: self.final_conv.freeze(),
            ..self
        })
    }

    /// ε_θ(x, t) for a batch `x` (B, C, H, W) and one timestep per image.
    pub fn forward(&self, x: &Tensor, t: &[f32]) -> CResult<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let m = self.cfg.size_multiple();
        if t.len() != b {
            candle_core::bail!("unet: {} timesteps for a batch of {b}", t.len())
        }
        if h % m != 0 || w % m != 0 {
            candle_core::bail!("unet: image size {h}x{w} is not divisible by {m}")
        }
        let temb = sinusoidal_embedding(t, self.cfg.dim, x.device())?;
        let temb = self
            .time_3
            .forward(&self.time_1.forward(&temb)?.gelu_erf()?)?;

        let mut x = self.init_conv.forward(x)?;
        let r = x.clone();
        let mut skips = Vec::with_capacity(2 * self.downs.len());
        for (b1, b2, attn, down) in &self.downs {
            x = b1.forward(&x, &temb)?;
            skips.push(x.clone());
            x = b2.forward(&x, &temb)?;
            x = attn.forward(&x)?;
            skips.push(x.clone());
            x = down.forward(&x)?;
        }
        x = self.mid_block1.forward(&x, &temb)?;
        x = self.mid_attn.forward(&x)?;
        x = self.mid_block2.forward(&x, &temb)?;
        for (b1, b2, attn, up, upsample) in &self.ups {
            let skip = skips.pop().expect("one skip per block");
            x = b1.forward(&Tensor::cat(&[&x, &skip], 1)?, &temb)?;
            let skip = skips.pop().expect("one skip per block");
            x = b2.forward(&Tensor::cat(&[&x, &skip], 1)?, &temb)?;
            x = attn.forward(&x)?;
            if *upsample {
                x = upsample_nearest2x(&x)?;
            }
            x = up.forward(&x)?;
        }
        x = Tensor::cat(&[&x, &r], 1)?;
        x = self.final_res_block.forward(&x, &temb)?;
        self.final_conv.forward(&x)
    }
}

/// The number of trainable values of a UNet of this shape.
pub fn parameter_count(tensors: &BTreeMap<String, Tensor>) -> usize {
    tensors.values().map(Tensor::elem_count).sum()
}
