//! Seeded initialisers with PyTorch's default distributions.
//!
//! candle's CPU random functions cannot be seeded, so every initial weight is drawn here from a
//! caller-supplied generator (e.g. `rand_chacha::ChaCha8Rng`) and copied into a tensor. The
//! distributions are PyTorch's:
//! - `nn.Conv2d` / `nn.Linear` weights: `kaiming_uniform_(a=√5)`, i.e. U(±1/√fan_in);
//! - their biases: U(±1/√fan_in);
//! - torchvision ResNet convs: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, i.e.
//!   N(0, 2/fan_out) with fan_out = out_channels · kh · kw (spec §5.4).

use candle_core::{Device, Result, Shape, Tensor};
use rand::{Rng, RngCore};
use rand_distr::{Distribution, StandardNormal};

/// fan_in of a weight: the product of all dimensions but the first (in · kh · kw for a conv,
/// in_features for a linear layer).
pub fn fan_in(shape: &Shape) -> usize {
    shape.dims().iter().skip(1).product::<usize>().max(1)
}

/// fan_out of a weight: out · kh · kw (all dimensions but the second).
pub fn fan_out(shape: &Shape) -> usize {
    let d = shape.dims();
    (d.first().copied().unwrap_or(1) * d.iter().skip(2).product::<usize>()).max(1)
}

/// A tensor of values drawn from U(−bound, bound).
pub fn uniform(
    shape: impl Into<Shape>,
    bound: f64,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Tensor::from_vec(v, shape, device)
}

/// A tensor of values drawn from N(0, std²).
pub fn normal(
    shape: impl Into<Shape>,
    std: f64,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut *rng);
            (z * std) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, device)
}

/// PyTorch's default weight of `nn.Conv2d` and `nn.Linear`: `kaiming_uniform_(a=√5)`, whose
/// bound is `gain·√(3/fan_in)` with `gain = √(2/(1+a²))`, i.e. `1/√fan_in`.
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let w = dia_nn::init::default_weight((64, 3, 3, 3), &mut rng, &candle_core::Device::Cpu)?;
/// let max = w.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(max <= 1.0 / 27f32.sqrt());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn default_weight(
    shape: impl Into<Shape>,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = gain * (3.0 / fan_in(&shape) as f64).sqrt();
    uniform(shape, bound, rng, device)
}

/// PyTorch's default bias: U(±1/√fan_in), with the fan_in of the layer's weight.
pub fn default_bias(
    len: usize,
    fan_in: usize,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    uniform(len, 1.0 / (fan_in.max(1) as f64).sqrt(), rng, device)
}

/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: N(0, 2/fan_out).
pub fn kaiming_normal_fan_out(
    shape: impl Into<Shape>,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let std = (2.0 / fan_out(&shape) as f64).sqrt();
    normal(shape, std, rng, device)
}
