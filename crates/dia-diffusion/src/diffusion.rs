//! `GaussianDiffusion` of 0.27.12 (spec §2.1–§2.3): the UNet with its schedule, the training
//! loss, `q_sample`, and the single reverse step `p_sample`.

use candle_core::{Device, Result as CResult, Tensor};
use dia_nn::init;
use rand::RngCore;

use crate::schedule::Schedule;
use crate::unet::Unet;

/// A DDPM: ε-prediction UNet plus the cosine schedule.
#[derive(Clone, Debug)]
pub struct GaussianDiffusion {
    unet: Unet,
    schedule: Schedule,
}

/// Gathers `buffer[t_i]` for each image as a (B, 1, 1, 1) tensor (the library's `extract`).
fn extract(buffer: &[f32], t: &[usize], device: &Device) -> CResult<Tensor> {
    let v: Vec<f32> = t.iter().map(|&i| buffer[i]).collect();
    Tensor::from_vec(v, (t.len(), 1, 1, 1), device)
}

/// Seeded standard normal noise shaped like `x` (candle's CPU generator cannot be seeded).
pub fn randn_like(x: &Tensor, rng: &mut dyn RngCore) -> CResult<Tensor> {
    init::normal(x.shape(), 1.0, rng, x.device())
}

impl GaussianDiffusion {
    /// The DDPM from a UNet and a schedule.
    pub fn new(unet: Unet, schedule: Schedule) -> Self {
        Self { unet, schedule }
    }

    /// The model with its UNet frozen ([`Unet::freeze`]).
    pub fn freeze(self) -> CResult<Self> {
        Ok(Self {
            unet: self.unet.freeze()?,
            ..self
        })
    }

    /// The UNet.
    pub fn unet(&self) -> &Unet {
        &self.unet
    }

    /// The device of the UNet's weights.
    pub fn device(&self) -> Device {
        self.unet.device().clone()
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn check_t(&self, t: &[usize]) -> CResult<()> {
        let n = self.schedule.timesteps();
        if let Some(&bad) = t.iter().find(|&&ti| ti >= n) {
            candle_core::bail!("timestep {bad} is outside 0..{n}")
        }
        Ok(())
    }

    /// ε_θ(x, t), one timestep per image.
    pub fn predict_noise(&self, x: &Tensor, t: &[usize]) -> CResult<Tensor> {
        self.check_t(t)?;
        let tf: Vec<f32> = t.iter().map(|&i| i as f32).collect();
        self.unet.forward(x, &tf)
    }

    /// `predict_start_from_noise`: `x̂₀ = √(1/ᾱ_t)·x − √(1/ᾱ_t − 1)·ε`.
    pub fn predict_start_from_noise(
        &self,
        x: &Tensor,
        t: &[usize],
        noise: &Tensor,
    ) -> CResult<Tensor> {
        let a = extract(self.schedule.sqrt_recip_alphas_cumprod(), t, x.device())?;
        let b = extract(self.schedule.sqrt_recipm1_alphas_cumprod(), t, x.device())?;
        x.broadcast_mul(&a)? - noise.broadcast_mul(&b)?
    }

    /// The clamped x̂₀ of one reverse step at `t` (all images), i.e. `p_sample(x, t)[1]`: the
    /// dissolving operator of spec §2.3. Also returns ε_θ.
    pub fn x_start(&self, x: &Tensor, t: usize) -> CResult<(Tensor, Tensor)> {
        let ts = vec![t; x.dim(0)?];
        let eps = self.predict_noise(x, &ts)?;
        let x0 = self
            .predict_start_from_noise(x, &ts, &eps)?
            .clamp(-1f32, 1f32)?;
        Ok((x0, eps))
    }

    /// `p_sample(x, t)`: returns (x_{t−1}, clamped x̂₀). The noise of x_{t−1} comes from `rng`
    /// (none at t = 0).
    pub fn p_sample(
        &self,
        x: &Tensor,
        t: usize,
        rng: &mut dyn RngCore,
    ) -> CResult<(Tensor, Tensor)> {
        let (x0, _) = self.x_start(x, t)?;
        let ts = vec![t; x.dim(0)?];
        let dev = x.device();
        let c1 = extract(self.schedule.posterior_mean_coef1(), &ts, dev)?;
        let c2 = extract(self.schedule.posterior_mean_coef2(), &ts, dev)?;
        let mean = (x0.broadcast_mul(&c1)? + x.broadcast_mul(&c2)?)?;
        if t == 0 {
            return Ok((mean, x0));
        }
        let logvar = self.schedule.posterior_log_variance_clipped()[t];
        let noise = randn_like(x, rng)?;
        let img = (mean + (noise * (0.5 * logvar as f64).exp())?)?;
        Ok((img, x0))
    }

    /// `q_sample`: `x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε`.
    pub fn q_sample(&self, x0: &Tensor, t: &[usize], noise: &Tensor) -> CResult<Tensor> {
        self.check_t(t)?;
        let a = extract(self.schedule.sqrt_alphas_cumprod(), t, x0.device())?;
        let b = extract(
            self.schedule.sqrt_one_minus_alphas_cumprod(),
            t,
            x0.device(),
        )?;
        x0.broadcast_mul(&a)? + noise.broadcast_mul(&b)?
    }

    /// The training loss of spec §2.2 for images `x01` in [0, 1]: mapped to [−1, 1], noised at
    /// `t` with `noise`, L1 between ε_θ and the noise, averaged (p2 weight 1).
    pub fn loss(&self, x01: &Tensor, t: &[usize], noise: &Tensor) -> CResult<Tensor> {
        let x0 = ((x01 * 2.0)? - 1.0)?;
        let xt = self.q_sample(&x0, t, noise)?;
        let eps = self.predict_noise(&xt, t)?;
        (eps - noise)?.abs()?.mean_all()
    }
}
