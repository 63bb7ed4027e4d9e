//! `nn.Linear`: `y = x·Wᵀ + b` for `x (N, in)`, with `W (out, in)` and `b (out)` under
//! PyTorch's names. The one linear layer of the project's models (the encoder heads, the
//! DDPM's time MLP); candle ops, so it runs and differentiates on every device.

use candle_core::{Module, Result, Tensor};

/// A linear layer.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// let w = Tensor::new(&[[1f32, 2.], [0., 1.]], &Device::Cpu)?;
/// let b = Tensor::new(&[0.5f32, -1.], &Device::Cpu)?;
/// let y = dia_nn::Linear::new(w, b).forward(&Tensor::new(&[[1f32, 1.]], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[3.5, 0.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// A layer from its weight (out, in) and bias (out).
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    /// The weight (out, in).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias (out).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}
