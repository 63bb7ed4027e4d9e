//! The cosine noise schedule and its derived buffers (spec §2.1).
//!
//! `ᾱ(x) = cos²(((x/T) + s)/(1 + s)·π/2)` for x = 0..T, normalised by ᾱ(0);
//! `β_t = clip(1 − ᾱ(t+1)/ᾱ(t), 0, 0.999)`; `alphas_cumprod = cumprod(1 − β)`. Everything is
//! computed in f64 and stored as f32, as `GaussianDiffusion` registers its buffers. When a
//! checkpoint carries the 13 buffers, the loaded values win over recomputed ones.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::error::{Error, Result};

/// The names of the 13 buffers `GaussianDiffusion` stores, in its order.
pub const BUFFER_NAMES: [&str; 13] = [
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "p2_loss_weight",
];

/// The diffusion schedule: the 13 buffers of `GaussianDiffusion`, each of length T.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    buffers: Vec<Vec<f32>>,
}

/// `cosine_beta_schedule(T, s)` in f64.
pub fn cosine_betas(timesteps: usize, s: f64) -> Vec<f64> {
    let t = timesteps as f64;
    let f = |x: usize| {
        let v = ((x as f64 / t + s) / (1.0 + s) * std::f64::consts::PI * 0.5).cos();
        v * v
    };
    let a0 = f(0);
    (0..timesteps)
        .map(|i| (1.0 - (f(i + 1) / a0) / (f(i) / a0)).clamp(0.0, 0.999))
        .collect()
}

impl Schedule {
    /// The paper's schedule: cosine, s = 0.008, T = 1000.
    pub fn cosine(timesteps: usize) -> Self {
        let betas = cosine_betas(timesteps, 0.008);
        let mut ac = Vec::with_capacity(timesteps);
        let mut prod = 1.0f64;
        for b in &betas {
            prod *= 1.0 - b;
            ac.push(prod);
        }
        let ac_prev: Vec<f64> = std::iter::once(1.0)
            .chain(ac[..timesteps - 1].iter().copied())
            .collect();
        let map =
            |f: &dyn Fn(usize) -> f64| (0..timesteps).map(|i| f(i) as f32).collect::<Vec<f32>>();
        let post_var = |i: usize| betas[i] * (1.0 - ac_prev[i]) / (1.0 - ac[i]);
        let buffers = vec![
            map(&|i| betas[i]),
            map(&|i| ac[i]),
            map(&|i| ac_prev[i]),
            map(&|i| ac[i].sqrt()),
            map(&|i| (1.0 - ac[i]).sqrt()),
            map(&|i| (1.0 - ac[i]).ln()),
            map(&|i| (1.0 / ac[i]).sqrt()),
            map(&|i| (1.0 / ac[i] - 1.0).sqrt()),
            map(&post_var),
            map(&|i| post_var(i).max(1e-20).ln()),
            map(&|i| betas[i] * ac_prev[i].sqrt() / (1.0 - ac[i])),
            map(&|i| (1.0 - ac_prev[i]) * (1.0 - betas[i]).sqrt() / (1.0 - ac[i])),
            // (k + ᾱ/(1−ᾱ))^−γ with γ = 0.
            map(&|_| 1.0),
        ];
        Self { buffers }
    }

    /// The buffers found in `tensors` (a checkpoint), falling back to the cosine schedule for
    /// any that are absent. A present buffer of the wrong length is an error.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>, timesteps: usize) -> Result<Self> {
        let mut s = Self::cosine(timesteps);
        for (i, name) in BUFFER_NAMES.iter().enumerate() {
            if let Some(t) = tensors.get(*name) {
                let v = t
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                if v.len() != timesteps {
                    return Err(Error::Weights(format!(
                        "schedule buffer {name} has {} values, expected {timesteps}",
                        v.len()
                    )));
                }
                s.buffers[i] = v;
            }
        }
        Ok(s)
    }

    /// The buffers as tensors under their names (for checkpoints).
    pub fn to_tensors(&self) -> Result<HashMap<String, Tensor>> {
        // Host tensors: the schedule is host f64/f32 vectors, and this goes to a checkpoint.
        let dev = candle_core::Device::Cpu;
        BUFFER_NAMES
            .iter()
            .zip(&self.buffers)
            .map(|(n, b)| Ok((n.to_string(), Tensor::new(b.as_slice(), &dev)?)))
            .collect()
    }

    /// T, the number of timesteps.
    pub fn timesteps(&self) -> usize {
        self.buffers[0].len()
    }

    /// The buffer `name` (one of [`BUFFER_NAMES`]).
    pub fn buffer(&self, name: &str) -> &[f32] {
        let i = BUFFER_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("unknown schedule buffer {name:?}"));
        &self.buffers[i]
    }

    /// β_t.
    pub fn betas(&self) -> &[f32] {
        &self.buffers[0]
    }
    /// ᾱ_t.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.buffers[1]
    }
    /// √ᾱ_t.
    pub fn sqrt_alphas_cumprod(&self) -> &[f32] {
        &self.buffers[3]
    }
    /// √(1 − ᾱ_t).
    pub fn sqrt_one_minus_alphas_cumprod(&self) -> &[f32] {
        &self.buffers[4]
    }
    /// √(1/ᾱ_t).
    pub fn sqrt_recip_alphas_cumprod(&self) -> &[f32] {
        &self.buffers[6]
    }
    /// √(1/ᾱ_t − 1).
    pub fn sqrt_recipm1_alphas_cumprod(&self) -> &[f32] {
        &self.buffers[7]
    }
    /// log of the clipped posterior variance.
    pub fn posterior_log_variance_clipped(&self) -> &[f32] {
        &self.buffers[9]
    }
    /// Posterior mean coefficient of x̂₀.
    pub fn posterior_mean_coef1(&self) -> &[f32] {
        &self.buffers[10]
    }
    /// Posterior mean coefficient of x_t.
    pub fn posterior_mean_coef2(&self) -> &[f32] {
        &self.buffers[11]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measured values of spec §2.1.
    #[test]
    fn matches_the_spec_table() {
        let s = Schedule::cosine(1000);
        let table = [
            (0, 0.999959, 1.000021, 0.006425),
            (30, 0.996466, 1.001772, 0.059554),
            (50, 0.991725, 1.004164, 0.091348),
            (70, 0.985074, 1.007548, 0.123094),
            (99, 0.972093, 1.014253, 0.169436),
            (200, 0.897763, 1.055405, 0.337461),
            (400, 0.645988, 1.244193, 0.740281),
        ];
        for (t, ac, r, rm1) in table {
            // The table has 6 decimals: agreement to rounding (≤ 5e-7) plus f32 storage.
            assert!((s.alphas_cumprod()[t] as f64 - ac).abs() <= 1e-6, "ᾱ_{t}");
            assert!(
                (s.sqrt_recip_alphas_cumprod()[t] as f64 - r).abs() <= 1e-6,
                "√(1/ᾱ_{t})"
            );
            assert!(
                (s.sqrt_recipm1_alphas_cumprod()[t] as f64 - rm1).abs() <= 1e-6,
                "√(1/ᾱ_{t}−1)"
            );
        }
        assert_eq!(s.timesteps(), 1000);
        assert!(s.betas().iter().all(|b| (0.0..=0.999).contains(b)));
    }

    #[test]
    fn loaded_buffers_win() {
        let mut m = HashMap::new();
        let v = vec![0.5f32; 1000];
        m.insert(
            "alphas_cumprod".to_string(),
            Tensor::new(v.as_slice(), &candle_core::Device::Cpu).unwrap(),
        );
        let s = Schedule::from_tensors(&m, 1000).unwrap();
        assert_eq!(s.alphas_cumprod()[7], 0.5);
        assert_eq!(s.betas(), Schedule::cosine(1000).betas());
        m.insert(
            "betas".to_string(),
            Tensor::new(&[0.1f32, 0.2][..], &candle_core::Device::Cpu).unwrap(),
        );
        let err = Schedule::from_tensors(&m, 1000).unwrap_err().to_string();
        assert!(err.contains("betas") && err.contains("2 values"), "{err}");
    }
}
