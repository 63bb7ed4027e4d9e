//! LARS over SGD as `torchlars.LARS(SGD(lr, momentum=0.9, weight_decay=1e-6), eps=1e-8,
//! trust_coef=0.001)` (spec §5.6), applied to every parameter.
//!
//! Per parameter p with gradient g:
//! `a = 0.001·‖p‖ / (‖g‖ + 1e-6·‖p‖ + 1e-8)` when both norms are positive, else 1;
//! `g ← (g + 1e-6·p)·a`; `buf ← 0.9·buf + g` (`buf = g` on the first step); `p ← p − lr·buf`.

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, TensorId, Var};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of LARS.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LarsConfig {
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// Weight decay, applied inside LARS (1e-6).
    pub weight_decay: f64,
    /// Trust coefficient (0.001).
    pub trust_coef: f64,
    /// eps of the trust ratio (1e-8).
    pub eps: f64,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 1e-6,
            trust_coef: 0.001,
            eps: 1e-8,
        }
    }
}

/// LARS with its momentum buffers.
#[derive(Debug, Default)]
pub struct Lars {
    cfg: LarsConfig,
    buffers: HashMap<TensorId, Tensor>,
}

fn norm(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .sqrt()?
        .to_scalar::<f64>()
}

impl Lars {
    /// LARS with the given hyper-parameters.
    pub fn new(cfg: LarsConfig) -> Self {
        Self {
            cfg,
            buffers: HashMap::new(),
        }
    }

    /// One step at learning rate `lr` over the variables that have a gradient.
    pub fn step<'a>(
        &mut self,
        vars: impl IntoIterator<Item = &'a Var>,
        grads: &GradStore,
        lr: f64,
    ) -> Result<()> {
        let c = self.cfg;
        for v in vars {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            // Detached copies: the buffers outlive the step, and a buffer computed from the
            // tracked variable would keep the op graph of every previous step alive.
            let id = v.as_tensor().id();
            let (p, g) = (&v.as_tensor().detach(), &g.detach());
            let (pn, gn) = (norm(p)?, norm(g)?);
            let a = if pn > 0.0 && gn > 0.0 {
                c.trust_coef * pn / (gn + c.weight_decay * pn + c.eps)
            } else {
                1.0
            };
            let g = ((g + (p * c.weight_decay)?)? * a)?;
            let buf = match self.buffers.get(&id) {
                Some(b) => ((b * c.momentum)? + g)?,
                None => g,
            };
            v.set(&(p - (&buf * lr)?)?)?;
            self.buffers.insert(id, buf);
        }
        Ok(())
    }

    /// The momentum buffers under the names of their variables (for checkpoints).
    pub fn export(&self, vars: &BTreeMap<String, Var>) -> HashMap<String, Tensor> {
        vars.iter()
            .filter_map(|(name, v)| {
                self.buffers
                    .get(&v.as_tensor().id())
                    .map(|b| (name.clone(), b.clone()))
            })
            .collect()
    }

    /// Restores buffers written by [`Lars::export`]; a buffer whose variable is missing or has
    /// another shape is an error.
    pub fn import(
        &mut self,
        vars: &BTreeMap<String, Var>,
        buffers: &HashMap<String, Tensor>,
    ) -> Result<()> {
        for (name, b) in buffers {
            let Some(v) = vars.get(name) else {
                candle_core::bail!("optimiser state for unknown parameter {name:?}")
            };
            if v.as_tensor().dims() != b.dims() {
                candle_core::bail!(
                    "optimiser state for {name:?} has shape {:?}, the parameter {:?}",
                    b.dims(),
                    v.as_tensor().dims()
                )
            }
            self.buffers
                .insert(v.as_tensor().id(), b.to_dtype(v.as_tensor().dtype())?);
        }
        Ok(())
    }
}
