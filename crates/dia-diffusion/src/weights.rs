//! Collecting a model's tensors under the reference's state-dict names (spec §8).
//!
//! The UNet's constructor asks a [`Weights`] for every tensor by name and shape. Fresh weights
//! are drawn from a seeded generator with PyTorch's default initialisers; loaded weights are
//! looked up and checked. Problems are collected rather than returned at the first one, so a
//! checkpoint that does not fit is reported whole: every missing, unexpected and mis-shaped
//! tensor in one message.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use candle_core::{DType, Device, Tensor};
use dia_nn::init;
use rand::RngCore;

use crate::error::{Error, Result};

/// How a fresh tensor is initialised (PyTorch's defaults for each layer type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// `nn.Conv2d` / `nn.Linear` weight: `kaiming_uniform_(a=√5)`.
    Weight,
    /// `nn.Conv2d` / `nn.Linear` bias: U(±1/√fan_in) with the given fan_in.
    Bias(usize),
    /// Ones (normalisation gains).
    Ones,
    /// Zeros (normalisation biases).
    Zeros,
}

enum Source<'a> {
    Init(&'a mut dyn RngCore),
    Tensors(&'a HashMap<String, Tensor>),
}

/// Hands out a model's tensors by name while its layers are built.
pub struct Weights<'a> {
    source: Source<'a>,
    device: Device,
    out: BTreeMap<String, Tensor>,
    problems: Vec<String>,
}

impl<'a> Weights<'a> {
    /// Fresh weights drawn from `rng`, in the order the layers ask for them.
    pub fn init(rng: &'a mut dyn RngCore, device: &Device) -> Self {
        Self::new(Source::Init(rng), device)
    }

    /// Weights taken from `tensors` (converted to f32 and moved to `device`).
    pub fn from_tensors(tensors: &'a HashMap<String, Tensor>, device: &Device) -> Self {
        Self::new(Source::Tensors(tensors), device)
    }

    fn new(source: Source<'a>, device: &Device) -> Self {
        Self {
            source,
            device: device.clone(),
            out: BTreeMap::new(),
            problems: Vec::new(),
        }
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tensor `name` of shape `dims`. A missing or mis-shaped tensor is recorded and a zero
    /// placeholder returned, so that [`Weights::finish`] can report all problems at once.
    pub fn get(&mut self, name: &str, dims: &[usize], init: Init) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Init(rng) => match init {
                Init::Weight => init::default_weight(dims, &mut **rng, &self.device)?,
                Init::Bias(fan_in) => {
                    init::default_bias(dims[0], fan_in, &mut **rng, &self.device)?
                }
                Init::Ones => Tensor::ones(dims, DType::F32, &self.device)?,
                Init::Zeros => Tensor::zeros(dims, DType::F32, &self.device)?,
            },
            Source::Tensors(map) => match map.get(name) {
                None => {
                    self.problems
                        .push(format!("missing: {name} (expected shape {dims:?})"));
                    Tensor::zeros(dims, DType::F32, &self.device)?
                }
                Some(t) if t.dims() != dims => {
                    self.problems.push(format!(
                        "wrong shape: {name} is {:?}, expected {dims:?}",
                        t.dims()
                    ));
                    Tensor::zeros(dims, DType::F32, &self.device)?
                }
                Some(t) => t.to_dtype(DType::F32)?.to_device(&self.device)?,
            },
        };
        self.out.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Every tensor handed out, by name; an error listing all missing, mis-shaped and (for
    /// loaded weights) unexpected tensors if there were any. Names in `ignore` (e.g. schedule
    /// buffers stored beside the UNet) are not reported as unexpected.
    pub fn finish(mut self, ignore: &[&str]) -> Result<BTreeMap<String, Tensor>> {
        if let Source::Tensors(map) = &self.source {
            let used: BTreeSet<&str> = self.out.keys().map(String::as_str).collect();
            let mut extra: Vec<&String> = map
                .keys()
                .filter(|k| !used.contains(k.as_str()) && !ignore.contains(&k.as_str()))
                .collect();
            extra.sort();
            for k in extra {
                self.problems.push(format!("unexpected: {k}"));
            }
        }
        if self.problems.is_empty() {
            Ok(self.out)
        } else {
            let n = self.problems.len();
            let mut msg = self.problems.join("\n");
            msg.push_str(&format!("\n({n} problem(s))"));
            Err(Error::Weights(msg))
        }
    }
}
