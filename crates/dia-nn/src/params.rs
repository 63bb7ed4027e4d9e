//! [`Params`]: the one collector of a model's tensors under the reference's state-dict names
//! (spec §8), for every model of the project (the ResNet encoders and the DDPM UNet).
//!
//! A model's constructor asks for every tensor by name, shape and initialiser. From a
//! [`Source::Init`] the tensor is drawn from the seeded generator with PyTorch's initialiser for
//! that layer type; from [`Source::Tensors`] it is looked up and checked. Problems are collected
//! rather than returned at the first one, so a checkpoint that does not fit is reported whole —
//! every missing, mis-shaped and unexpected tensor in one error.
//!
//! ```
//! use dia_nn::params::{Init, Params, Source};
//! use rand::SeedableRng;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut p = Params::new(Source::Init(&mut rng), &candle_core::Device::Cpu);
//! let fc = p.linear("fc", 4, 2)?;
//! let (tensors, vars) = p.finish(&[])?;
//! assert_eq!(tensors.keys().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);
//! assert_eq!(vars.len(), 2); // a layer's weights are trainable variables
//! let loaded = std::collections::HashMap::from([("fc.weight".to_string(), tensors["fc.bias"].clone())]);
//! let mut q = Params::new(Source::Tensors(&loaded), &candle_core::Device::Cpu);
//! q.linear("fc", 4, 2)?;
//! let err = q.finish(&[]).unwrap_err().to_string();
//! assert!(err.contains("wrong shape: fc.weight") && err.contains("missing: fc.bias"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::RngCore;

use crate::{init, BatchNorm2d, Conv2d, Conv2dConfig, Linear};

/// How a fresh tensor is initialised (PyTorch's defaults for each layer type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// `nn.Conv2d` / `nn.Linear` weight: `kaiming_uniform_(a=√5)`.
    Weight,
    /// torchvision ResNet convolutions: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    KaimingNormalFanOut,
    /// `nn.Conv2d` / `nn.Linear` bias: U(±1/√fan_in) with the given fan_in.
    Bias(usize),
    /// Ones (normalisation gains, running variances).
    Ones,
    /// Zeros (normalisation biases, running means).
    Zeros,
}

/// Where the tensors come from.
pub enum Source<'a> {
    /// Fresh, seeded initialisation.
    Init(&'a mut dyn RngCore),
    /// Loaded tensors by name (e.g. a safetensors file), converted to f32.
    Tensors(&'a HashMap<String, Tensor>),
}

/// What did not fit: every missing, mis-shaped and unexpected tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// One line per problem (`missing: NAME (expected shape …)`, `wrong shape: …`,
    /// `unexpected: NAME`).
    pub problems: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n({} problem(s))",
            self.problems.join("\n"),
            self.problems.len()
        )
    }
}

impl std::error::Error for Mismatch {}

/// What [`Params::finish`] returns: every tensor handed out, and the trainable variables, by
/// name.
pub type Collected = (BTreeMap<String, Tensor>, BTreeMap<String, Var>);

/// Hands out a model's tensors by name while its layers are built.
pub struct Params<'a> {
    source: Source<'a>,
    device: Device,
    out: BTreeMap<String, Tensor>,
    vars: BTreeMap<String, Var>,
    problems: Vec<String>,
}

impl<'a> Params<'a> {
    /// A collector placing its tensors on `device`.
    pub fn new(source: Source<'a>, device: &Device) -> Self {
        Self {
            source,
            device: device.clone(),
            out: BTreeMap::new(),
            vars: BTreeMap::new(),
            problems: Vec::new(),
        }
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The loaded tensor `name` as it is (no check), for values that are not parameters
    /// (e.g. `num_batches_tracked`); `None` when initialising.
    pub fn loaded(&self, name: &str) -> Option<&Tensor> {
        match &self.source {
            Source::Tensors(map) => map.get(name),
            Source::Init(_) => None,
        }
    }

    /// The tensor `name` of shape `dims`. A missing or mis-shaped tensor is recorded and a
    /// zero placeholder returned, so that [`Params::finish`] can report every problem at once.
    pub fn get(&mut self, name: &str, dims: &[usize], how: Init) -> Result<Tensor> {
        let dev = &self.device;
        let t = match &mut self.source {
            Source::Init(rng) => match how {
                Init::Weight => init::default_weight(dims, &mut **rng, dev)?,
                Init::KaimingNormalFanOut => init::kaiming_normal_fan_out(dims, &mut **rng, dev)?,
                Init::Bias(fan_in) => init::default_bias(dims[0], fan_in, &mut **rng, dev)?,
                Init::Ones => Tensor::ones(dims, DType::F32, dev)?,
                Init::Zeros => Tensor::zeros(dims, DType::F32, dev)?,
            },
            Source::Tensors(map) => match map.get(name) {
                None => {
                    self.problems
                        .push(format!("missing: {name} (expected shape {dims:?})"));
                    Tensor::zeros(dims, DType::F32, dev)?
                }
                Some(t) if t.dims() != dims => {
                    self.problems.push(format!(
                        "wrong shape: {name} is {:?}, expected {dims:?}",
                        t.dims()
                    ));
                    Tensor::zeros(dims, DType::F32, dev)?
                }
                Some(t) => t.to_dtype(DType::F32)?.to_device(dev)?,
            },
        };
        self.out.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// [`Params::get`] as a trainable variable (listed by [`Params::finish`]).
    pub fn var(&mut self, name: &str, dims: &[usize], how: Init) -> Result<Tensor> {
        let v = Var::from_tensor(&self.get(name, dims, how)?)?;
        let t = v.as_tensor().clone();
        self.out.insert(name.to_string(), t.clone());
        self.vars.insert(name.to_string(), v);
        Ok(t)
    }

    /// `nn.Conv2d(cin, cout, k)`: trainable `name.weight` initialised as `how`, and
    /// `name.bias` (PyTorch's default) when `bias`.
    pub fn conv2d(
        &mut self,
        name: &str,
        (cin, cout, k): (usize, usize, usize),
        cfg: Conv2dConfig,
        bias: bool,
        how: Init,
    ) -> Result<Conv2d> {
        let weight = self.var(&format!("{name}.weight"), &[cout, cin, k, k], how)?;
        let bias = match bias {
            true => Some(self.var(&format!("{name}.bias"), &[cout], Init::Bias(cin * k * k))?),
            false => None,
        };
        Ok(Conv2d::new(weight, bias, cfg))
    }

    /// `nn.Linear(inp, out)`: trainable `name.{weight,bias}` with PyTorch's defaults.
    pub fn linear(&mut self, name: &str, inp: usize, out: usize) -> Result<Linear> {
        let weight = self.var(&format!("{name}.weight"), &[out, inp], Init::Weight)?;
        let bias = self.var(&format!("{name}.bias"), &[out], Init::Bias(inp))?;
        Ok(Linear::new(weight, bias))
    }

    /// `nn.BatchNorm2d(c)`: trainable `name.{weight,bias}`, the running estimates and
    /// `num_batches_tracked` (weight 1, bias 0, mean 0, variance 1, 0 batches when fresh).
    pub fn batch_norm(&mut self, name: &str, c: usize) -> Result<BatchNorm2d> {
        let w = self.var(&format!("{name}.weight"), &[c], Init::Ones)?;
        let b = self.var(&format!("{name}.bias"), &[c], Init::Zeros)?;
        let rm = self.get(&format!("{name}.running_mean"), &[c], Init::Zeros)?;
        let rv = self.get(&format!("{name}.running_var"), &[c], Init::Ones)?;
        let tracked = self
            .loaded(&format!("{name}.num_batches_tracked"))
            .and_then(|t| t.to_dtype(DType::F64).ok()?.to_scalar::<f64>().ok())
            .map_or(0, |v| v as u64);
        BatchNorm2d::from_tensors(w, b, rm, rv, tracked)
    }

    /// Every tensor handed out and the trainable variables, by name; or every problem:
    /// missing, mis-shaped and (for loaded tensors) unexpected ones. Loaded names in `ignore`,
    /// or ending in one of its entries that starts with `.` (e.g. `.num_batches_tracked`), are
    /// not reported as unexpected.
    pub fn finish(mut self, ignore: &[&str]) -> std::result::Result<Collected, Mismatch> {
        if let Source::Tensors(map) = &self.source {
            let used: BTreeSet<&str> = self.out.keys().map(String::as_str).collect();
            let ignored = |k: &str| {
                ignore
                    .iter()
                    .any(|i| k == *i || (i.starts_with('.') && k.ends_with(i)))
            };
            let mut extra: Vec<&String> = map
                .keys()
                .filter(|k| !used.contains(k.as_str()) && !ignored(k))
                .collect();
            extra.sort();
            for k in extra {
                self.problems.push(format!("unexpected: {k}"));
            }
        }
        if self.problems.is_empty() {
            Ok((self.out, self.vars))
        } else {
            Err(Mismatch {
                problems: self.problems,
            })
        }
    }
}
