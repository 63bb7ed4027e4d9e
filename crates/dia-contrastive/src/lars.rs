//! LARS over SGD as `torchlars.LARS(SGD(lr, momentum=0.9, weight_decay=1e-6), eps=1e-8,
//! trust_coef=0.001)` (spec §5.6), applied to every parameter.
//!
//! Per parameter p with gradient g:
//! `a = 0.001·‖p‖ / (‖g‖ + 1e-6·‖p‖ + 1e-8)` when both norms are positive, else 1;
//! `g ← (g + 1e-6·p)·a`; `buf ← 0.9·buf + g` (`buf = g` on the first step); `p ← p − lr·buf`.
//!
//! On the CPU, with f32 parameters, a step is two passes over each parameter (the norms, then
//! the update, in the same f32 operations as the tensor version); elsewhere (other devices, or
//! dia-nn's portable kernel policy) it is written with tensor ops, a dozen passes and as many
//! allocations per parameter.

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Result, Storage, Tensor, TensorId, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Elements per parallel task of the CPU step.
const CHUNK: usize = 1 << 16;

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

impl LarsConfig {
    /// The trust ratio `a` for parameter and gradient norms.
    fn trust_ratio(&self, pn: f64, gn: f64) -> f64 {
        if pn > 0.0 && gn > 0.0 {
            self.trust_coef * pn / (gn + self.weight_decay * pn + self.eps)
        } else {
            1.0
        }
    }
}

/// LARS with its momentum buffers.
#[derive(Debug, Default)]
pub struct Lars {
    cfg: LarsConfig,
    buffers: HashMap<TensorId, Tensor>,
}

/// Calls `f` with the values of `t` when it is a contiguous f32 tensor on the CPU.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(f(&v[a..b])),
        _ => None,
    }
}

/// ‖v‖ accumulated in f64, as the tensor version's f64 conversion.
fn norm_f32(v: &[f32]) -> f64 {
    v.par_chunks(CHUNK)
        .map(|c| {
            let mut lanes = [0f64; 8];
            let mut it = c.chunks_exact(8);
            for ch in &mut it {
                for l in 0..8 {
                    lanes[l] += ch[l] as f64 * ch[l] as f64;
                }
            }
            let rest: f64 = it.remainder().iter().map(|&x| x as f64 * x as f64).sum();
            lanes.iter().sum::<f64>() + rest
        })
        .sum::<f64>()
        .sqrt()
}

/// The new parameter and momentum buffer of one LARS step on f32 slices (parameter `p`,
/// gradient `g`, previous buffer `buf`), or `None` when the lengths disagree. The operations
/// are the tensor version's, in the same order.
fn update_f32(
    c: &LarsConfig,
    lr: f64,
    p: &[f32],
    g: &[f32],
    buf: Option<&[f32]>,
) -> Option<(Vec<f32>, Vec<f32>)> {
    if p.len() != g.len() || buf.is_some_and(|b| b.len() != p.len()) {
        return None;
    }
    let a = c.trust_ratio(norm_f32(p), norm_f32(g)) as f32;
    let (wd, m, lr) = (c.weight_decay as f32, c.momentum as f32, lr as f32);
    let mut np = vec![0f32; p.len()];
    let mut nb = vec![0f32; p.len()];
    np.par_chunks_mut(CHUNK)
        .zip(nb.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(i, (np, nb))| {
            let o = i * CHUNK;
            let (pc, gc) = (&p[o..][..np.len()], &g[o..][..np.len()]);
            let bc = buf.map(|b| &b[o..][..np.len()]);
            for j in 0..np.len() {
                let d = (gc[j] + pc[j] * wd) * a;
                let b = match bc {
                    Some(b) => b[j] * m + d,
                    None => d,
                };
                nb[j] = b;
                np[j] = pc[j] - b * lr;
            }
        });
    Some((np, nb))
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
        for v in vars {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            // The two-pass CPU step is the fast path of dia-nn's dispatch rule: it follows the
            // same kernel policy, so the portable tensor step is what CI checks for GPUs too.
            let fast = dia_nn::kernels::use_fast(&[v.as_tensor(), g]);
            if !(fast && self.step_cpu(v, g, lr)?) {
                self.step_tensors(v, g, lr)?;
            }
        }
        Ok(())
    }

    /// The step of one parameter with tensor ops (any device, any float type).
    fn step_tensors(&mut self, v: &Var, g: &Tensor, lr: f64) -> Result<()> {
        let c = self.cfg;
        // Detached copies: the buffers outlive the step, and a buffer computed from the
        // tracked variable would keep the op graph of every previous step alive.
        let id = v.as_tensor().id();
        let (p, g) = (&v.as_tensor().detach(), &g.detach());
        let a = c.trust_ratio(norm(p)?, norm(g)?);
        let g = ((g + (p * c.weight_decay)?)? * a)?;
        let buf = match self.buffers.get(&id) {
            Some(b) => ((b * c.momentum)? + g)?,
            None => g,
        };
        v.set(&(p - (&buf * lr)?)?)?;
        self.buffers.insert(id, buf);
        Ok(())
    }

    /// The step of one parameter in two passes over contiguous f32 CPU data; `false` (nothing
    /// done) for any other tensor. The operations are those of the tensor version, in f32 and in
    /// the same order (the norms are summed in another order, in f64).
    fn step_cpu(&mut self, v: &Var, g: &Tensor, lr: f64) -> Result<bool> {
        let c = self.cfg;
        let id = v.as_tensor().id();
        let p = v.as_tensor();
        let buf = self.buffers.get(&id);
        let new = with_cpu_f32(p, |pv| {
            with_cpu_f32(g, |gv| match buf {
                Some(b) => with_cpu_f32(b, |bv| update_f32(&c, lr, pv, gv, Some(bv))).flatten(),
                None => update_f32(&c, lr, pv, gv, None),
            })
            .flatten()
        })
        .flatten();
        let Some((np, nb)) = new else {
            return Ok(false);
        };
        let (dims, dev) = (p.dims().to_vec(), p.device().clone());
        v.set(&Tensor::from_vec(np, dims.as_slice(), &dev)?)?;
        self.buffers
            .insert(id, Tensor::from_vec(nb, dims.as_slice(), &dev)?);
        Ok(true)
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
            let p = v.as_tensor();
            let b = b.to_dtype(p.dtype())?.to_device(p.device())?;
            self.buffers.insert(p.id(), b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The two-pass CPU step and the tensor step agree over three steps (momentum included),
    /// on a parameter larger than one parallel task.
    #[test]
    fn the_cpu_step_matches_the_tensor_step() {
        let dev = Device::Cpu;
        let n = CHUNK + 1000;
        let p0: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let (a, b) = (
            Var::from_slice(&p0, n, &dev).unwrap(),
            Var::from_slice(&p0, n, &dev).unwrap(),
        );
        let (mut la, mut lb) = (Lars::default(), Lars::default());
        for step in 0..3 {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 104729 + step * 31) % 997) as f32 / 900.0 - 0.5)
                .collect();
            let g = Tensor::from_vec(g, n, &dev).unwrap();
            assert!(la.step_cpu(&a, &g, 0.3).unwrap(), "the CPU path applies");
            lb.step_tensors(&b, &g, 0.3).unwrap();
            let (x, y) = (
                a.as_tensor().to_vec1::<f32>().unwrap(),
                b.as_tensor().to_vec1::<f32>().unwrap(),
            );
            let d = x
                .iter()
                .zip(&y)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-6, "step {step}: {d}");
        }
    }
}
