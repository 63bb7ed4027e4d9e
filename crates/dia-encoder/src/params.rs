//! Building a model's tensors under the reference's state-dict names, either freshly
//! initialised from a seeded generator or taken from loaded tensors.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use dia_nn::{init, BatchNorm2d};
use rand::RngCore;

use crate::error::{Error, Result};

/// How a convolution weight is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvInit {
    /// PyTorch's `nn.Conv2d` default, `kaiming_uniform_(a=√5)`.
    Default,
    /// torchvision ResNet: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    KaimingNormalFanOut,
}

/// Where the tensors come from.
pub enum Source<'a> {
    /// Fresh, seeded initialisation.
    Init(&'a mut dyn RngCore),
    /// Loaded tensors by name (e.g. a safetensors file).
    Tensors(&'a HashMap<String, Tensor>),
}

/// Collects the trainable variables of a model while its layers are built.
pub struct Builder<'a> {
    source: Source<'a>,
    device: Device,
    vars: BTreeMap<String, Var>,
    used: Vec<String>,
}

impl<'a> Builder<'a> {
    /// A builder on `device`.
    pub fn new(source: Source<'a>, device: &Device) -> Self {
        Self {
            source,
            device: device.clone(),
            vars: BTreeMap::new(),
            used: Vec::new(),
        }
    }

    fn take(
        &mut self,
        name: &str,
        dims: &[usize],
        fresh: impl FnOnce(&mut dyn RngCore, &Device) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        self.used.push(name.to_string());
        match &mut self.source {
            Source::Init(rng) => Ok(fresh(&mut **rng, &self.device)?),
            Source::Tensors(map) => {
                let t = map.get(name).ok_or_else(|| {
                    Error::Weights(format!("missing tensor {name:?} (expected shape {dims:?})"))
                })?;
                if t.dims() != dims {
                    return Err(Error::Weights(format!(
                        "tensor {name:?} has shape {:?}, expected {dims:?}",
                        t.dims()
                    )));
                }
                Ok(t.to_dtype(DType::F32)?.to_device(&self.device)?)
            }
        }
    }

    /// A trainable tensor.
    fn var(
        &mut self,
        name: &str,
        dims: &[usize],
        fresh: impl FnOnce(&mut dyn RngCore, &Device) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        let t = self.take(name, dims, fresh)?;
        let v = Var::from_tensor(&t)?;
        let t = v.as_tensor().clone();
        self.vars.insert(name.to_string(), v);
        Ok(t)
    }

    /// A convolution weight `name.weight` (no bias, as in the ResNets).
    pub fn conv(
        &mut self,
        name: &str,
        cout: usize,
        cin: usize,
        k: usize,
        kind: ConvInit,
    ) -> Result<Tensor> {
        let dims = [cout, cin, k, k];
        self.var(&format!("{name}.weight"), &dims, |rng, dev| match kind {
            ConvInit::Default => init::default_weight((cout, cin, k, k), rng, dev),
            ConvInit::KaimingNormalFanOut => {
                init::kaiming_normal_fan_out((cout, cin, k, k), rng, dev)
            }
        })
    }

    /// A linear layer `name.{weight,bias}` with PyTorch's default initialisation.
    pub fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<(Tensor, Tensor)> {
        let w = self.var(&format!("{name}.weight"), &[out, inp], |rng, dev| {
            init::default_weight((out, inp), rng, dev)
        })?;
        let b = self.var(&format!("{name}.bias"), &[out], |rng, dev| {
            init::default_bias(out, inp, rng, dev)
        })?;
        Ok((w, b))
    }

    /// A batch norm `name.{weight,bias,running_mean,running_var}` (weight 1, bias 0, mean 0,
    /// variance 1 when fresh).
    pub fn batch_norm(&mut self, name: &str, c: usize) -> Result<BatchNorm2d> {
        let ones = |_: &mut dyn RngCore, dev: &Device| Tensor::ones(c, DType::F32, dev);
        let zeros = |_: &mut dyn RngCore, dev: &Device| Tensor::zeros(c, DType::F32, dev);
        let w = self.var(&format!("{name}.weight"), &[c], ones)?;
        let b = self.var(&format!("{name}.bias"), &[c], zeros)?;
        let rm = self.take(&format!("{name}.running_mean"), &[c], zeros)?;
        let rv = self.take(&format!("{name}.running_var"), &[c], ones)?;
        let tracked = match &self.source {
            Source::Tensors(map) => map
                .get(&format!("{name}.num_batches_tracked"))
                .and_then(|t| t.to_dtype(DType::F64).ok()?.to_scalar::<f64>().ok())
                .map_or(0, |v| v as u64),
            Source::Init(_) => 0,
        };
        Ok(BatchNorm2d::from_tensors(w, b, rm, rv, tracked)?)
    }

    /// The trainable variables by name, and the names of every tensor read.
    pub fn finish(self) -> (BTreeMap<String, Var>, Vec<String>) {
        (self.vars, self.used)
    }
}
