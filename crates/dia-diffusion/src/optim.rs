//! The DDPM's optimiser pieces (spec §2.2): Adam (PyTorch semantics), global gradient-norm
//! clipping, and the EMA of `ema_pytorch` as the lucidrains Trainer configures it.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Result as CResult, Tensor, Var};
use serde::{Deserialize, Serialize};

/// `torch.optim.Adam` without weight decay.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate (8e-5 in the paper's DDPMs).
    pub lr: f64,
    /// (β₁, β₂) = (0.9, 0.99).
    pub betas: (f64, f64),
    /// ε = 1e-8.
    pub eps: f64,
    step: u64,
    m: HashMap<String, Tensor>,
    v: HashMap<String, Tensor>,
}

impl Adam {
    /// A fresh optimiser.
    pub fn new(lr: f64, betas: (f64, f64)) -> Self {
        Self {
            lr,
            betas,
            eps: 1e-8,
            step: 0,
            m: HashMap::new(),
            v: HashMap::new(),
        }
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every variable with its gradient in `grads` (by name).
    pub fn step(
        &mut self,
        vars: &BTreeMap<String, Var>,
        grads: &HashMap<String, Tensor>,
    ) -> CResult<()> {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        let step_size = self.lr / bc1;
        for (name, var) in vars {
            let Some(g) = grads.get(name) else { continue };
            let m = match self.m.get(name) {
                Some(m) => ((m * b1)? + (g * (1.0 - b1))?)?,
                None => (g * (1.0 - b1))?,
            };
            let v = match self.v.get(name) {
                Some(v) => ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?,
                None => (g.sqr()? * (1.0 - b2))?,
            };
            let denom = ((v.sqrt()? / bc2.sqrt())? + self.eps)?;
            let update = ((&m / denom)? * step_size)?;
            var.set(&(var.as_tensor().detach() - update)?)?;
            self.m.insert(name.clone(), m.detach());
            self.v.insert(name.clone(), v.detach());
        }
        Ok(())
    }

    /// The state as named tensors (`m.NAME`, `v.NAME`) and the step count.
    pub fn export(&self) -> (HashMap<String, Tensor>, u64) {
        let mut out = HashMap::new();
        for (k, t) in &self.m {
            out.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("v.{k}"), t.clone());
        }
        (out, self.step)
    }

    /// Restores the state written by [`Adam::export`]; names must be variables of the same
    /// shape.
    pub fn import(
        &mut self,
        vars: &BTreeMap<String, Var>,
        state: &HashMap<String, Tensor>,
        step: u64,
    ) -> CResult<()> {
        for (key, t) in state {
            let (slot, name) = match key.split_once('.') {
                Some(("m", n)) => (&mut self.m, n),
                Some(("v", n)) => (&mut self.v, n),
                _ => candle_core::bail!("optimiser state has an unknown entry {key:?}"),
            };
            let Some(var) = vars.get(name) else {
                candle_core::bail!("optimiser state for unknown parameter {name:?}")
            };
            if var.as_tensor().dims() != t.dims() {
                candle_core::bail!(
                    "optimiser state for {name:?} has shape {:?}, the parameter {:?}",
                    t.dims(),
                    var.as_tensor().dims()
                )
            }
            slot.insert(name.to_string(), t.clone());
        }
        self.step = step;
        Ok(())
    }
}

/// `clip_grad_norm_(max_norm)`: scales all gradients by `max_norm/(‖g‖ + 1e-6)` when that is
/// below 1. Returns the total norm before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> CResult<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.values_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

/// The EMA of `ema_pytorch` with the Trainer's settings: `update()` after every optimiser
/// step; the first call copies the weights; then every `update_every`-th call copies them
/// again while the counter is ≤ `update_after_step` (100) and afterwards blends them with the
/// warm-up decay `min(β, 1 − (1 + e)^(−2/3))`, e = (counter + 1) − 101.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ema {
    /// β = 0.995.
    pub beta: f64,
    /// Blend every this many steps (10).
    pub update_every: u64,
    /// Copy instead of blend up to this counter (100).
    pub update_after_step: u64,
    /// The counter (`ema.step`).
    pub step: u64,
    /// Whether the first copy happened.
    pub initted: bool,
}

impl Ema {
    /// The Trainer's EMA: β = `beta`, every `update_every` steps.
    pub fn new(beta: f64, update_every: u64) -> Self {
        Self {
            beta,
            update_every,
            update_after_step: 100,
            step: 0,
            initted: false,
        }
    }

    fn decay(&self) -> f64 {
        let epoch = (self.step as f64 - self.update_after_step as f64 - 1.0).max(0.0);
        if epoch <= 0.0 {
            return 0.0;
        }
        (1.0 - (1.0 + epoch).powf(-2.0 / 3.0)).clamp(0.0, self.beta)
    }

    /// One `update()`: brings `shadow` towards the current `vars`.
    pub fn update(
        &mut self,
        shadow: &mut BTreeMap<String, Tensor>,
        vars: &BTreeMap<String, Var>,
    ) -> CResult<()> {
        let step = self.step;
        self.step += 1;
        let copy = |shadow: &mut BTreeMap<String, Tensor>| -> CResult<()> {
            for (k, v) in vars {
                shadow.insert(k.clone(), v.as_tensor().detach().copy()?);
            }
            Ok(())
        };
        if !self.initted {
            self.initted = true;
            return copy(shadow);
        }
        if !step.is_multiple_of(self.update_every) {
            return Ok(());
        }
        if step <= self.update_after_step {
            return copy(shadow);
        }
        let d = self.decay();
        for (k, v) in vars {
            let cur = v.as_tensor().detach();
            let new = match shadow.get(k) {
                Some(s) => ((s * d)? + (cur * (1.0 - d))?)?,
                None => cur.copy()?,
            };
            shadow.insert(k.clone(), new);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two Adam steps on f(p) = Σ p² against values computed by hand with PyTorch's formula.
    #[test]
    fn adam_matches_pytorch_formula() {
        let p = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let vars = BTreeMap::from([("p".to_string(), p.clone())]);
        let mut adam = Adam::new(0.1, (0.9, 0.99));
        for _ in 0..2 {
            let g = (p.as_tensor() * 2.0).unwrap();
            adam.step(&vars, &HashMap::from([("p".to_string(), g)]))
                .unwrap();
        }
        let got = p.as_tensor().to_vec1::<f32>().unwrap();
        // PyTorch 2.15: torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.99)), p = [1, -2],
        // loss = (p**2).sum(), two steps.
        let want = [0.800_388_6f32, -1.800_154_9];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut g = HashMap::from([(
            "a".to_string(),
            Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap(),
        )]);
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-9);
        let v = g["a"].to_vec1::<f32>().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-5 && (v[1] - 0.8).abs() < 1e-5);
    }

    #[test]
    fn ema_copies_then_blends() {
        let p = Var::from_slice(&[1.0f32], 1, &Device::Cpu).unwrap();
        let vars = BTreeMap::from([("p".to_string(), p.clone())]);
        let mut shadow = BTreeMap::new();
        let mut ema = Ema::new(0.995, 10);
        ema.update(&mut shadow, &vars).unwrap();
        assert_eq!(shadow["p"].to_vec1::<f32>().unwrap(), [1.0]);
        p.set(&Tensor::new(&[2.0f32], &Device::Cpu).unwrap())
            .unwrap();
        // Counter 1..=9: no update.
        for _ in 1..10 {
            ema.update(&mut shadow, &vars).unwrap();
        }
        assert_eq!(shadow["p"].to_vec1::<f32>().unwrap(), [1.0]);
        // Counter 10 (≤ 100): copy.
        ema.update(&mut shadow, &vars).unwrap();
        assert_eq!(shadow["p"].to_vec1::<f32>().unwrap(), [2.0]);
        // Past 100 it blends with a decay below β.
        for _ in 11..=110 {
            ema.update(&mut shadow, &vars).unwrap();
        }
        p.set(&Tensor::new(&[4.0f32], &Device::Cpu).unwrap())
            .unwrap();
        for _ in 111..=120 {
            ema.update(&mut shadow, &vars).unwrap();
        }
        // At counter 120 (121 after the increment): decay = 1 − (1 + 20)^(−2/3).
        let d = 1.0 - 21f64.powf(-2.0 / 3.0);
        let want = 2.0 * d + 4.0 * (1.0 - d);
        let got = shadow["p"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
