//! GroupNorm and the weight-standardised convolution of the DDPM UNet
//! (`denoising_diffusion_pytorch` 0.27.12, spec §2.1).
//!
//! Both are composed from candle ops, so candle's autograd differentiates them and the DDPM can
//! be trained in Rust; the convolution inside is this crate's gemm [`conv2d`].

use candle_core::{bail, Result, Tensor};

use crate::conv::{conv2d, Conv2dConfig};

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

/// The library's `WeightStandardizedConv2d`: per output channel
/// `w' = (w − mean(w)) / √(var(w, biased) + eps)` over (in, kh, kw), eps = 1e-5 in f32, then a
/// convolution with `w'`.
pub fn weight_standardized_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let (cout, cin, kh, kw) = weight.dims4()?;
    let flat = weight.reshape((cout, cin * kh * kw))?;
    let mean = flat.mean_keepdim(1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    let standardized = centred
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .reshape((cout, cin, kh, kw))?;
    conv2d(x, &standardized, bias, cfg)
}
