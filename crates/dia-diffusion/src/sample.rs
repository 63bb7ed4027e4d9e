//! Sampling images from a DDPM (for preview grids and `dia sample`): the full ancestral loop
//! (`p_sample_loop`) and DDIM with fewer steps (`ddim_sample`, 0.27.12 semantics). DIA itself
//! never samples; these show what a trained DDPM has learnt.

use candle_core::{Result as CResult, Tensor};
use rand::RngCore;

use crate::diffusion::{randn_like, GaussianDiffusion};

/// `p_sample_loop`: start from N(0, I) of `shape` (B, C, H, W) and apply `p_sample` for
/// t = T−1 … 0; returns images in [0, 1]. `progress(done, total)` is called after every step.
pub fn p_sample_loop(
    ddpm: &GaussianDiffusion,
    shape: (usize, usize, usize, usize),
    rng: &mut dyn RngCore,
    progress: &mut dyn FnMut(usize, usize),
) -> CResult<Tensor> {
    let zeros = Tensor::zeros(shape, candle_core::DType::F32, &ddpm.device())?;
    let mut img = randn_like(&zeros, rng)?;
    let total = ddpm.schedule().timesteps();
    for (i, t) in (0..total).rev().enumerate() {
        img = ddpm.p_sample(&img, t, rng)?.0;
        progress(i + 1, total);
    }
    ((img + 1.0)? * 0.5)?.clamp(0f32, 1f32)
}

/// The DDIM time pairs of 0.27.12: `linspace(−1, T−1, steps+1)` truncated to integers,
/// reversed, paired.
pub fn ddim_times(total: usize, steps: usize) -> Vec<(i64, i64)> {
    let steps = steps.clamp(1, total);
    let times: Vec<i64> = (0..=steps)
        .map(|i| {
            let v = -1.0 + (total as f64) * i as f64 / steps as f64;
            // torch's `.int()` truncates towards zero.
            v.trunc() as i64
        })
        .rev()
        .collect();
    times.windows(2).map(|p| (p[0], p[1])).collect()
}

/// `ddim_sample` with `steps` sampling steps and η = `eta` (1.0 in the library); returns images
/// in [0, 1].
pub fn ddim_sample(
    ddpm: &GaussianDiffusion,
    shape: (usize, usize, usize, usize),
    steps: usize,
    eta: f64,
    rng: &mut dyn RngCore,
    progress: &mut dyn FnMut(usize, usize),
) -> CResult<Tensor> {
    let zeros = Tensor::zeros(shape, candle_core::DType::F32, &ddpm.device())?;
    let mut img = randn_like(&zeros, rng)?;
    let pairs = ddim_times(ddpm.schedule().timesteps(), steps);
    let ac = ddpm.schedule().alphas_cumprod();
    let total = pairs.len();
    for (i, &(time, next)) in pairs.iter().enumerate() {
        let t = time as usize;
        let (x0, eps) = ddpm.x_start(&img, t)?;
        if next < 0 {
            img = x0;
            progress(i + 1, total);
            continue;
        }
        let (a, an) = (ac[t] as f64, ac[next as usize] as f64);
        let sigma = eta * ((1.0 - a / an) * (1.0 - an) / (1.0 - a)).sqrt();
        let c = (1.0 - an - sigma * sigma).sqrt();
        let noise = randn_like(&img, rng)?;
        img = (((x0 * an.sqrt())? + (eps * c)?)? + (noise * sigma)?)?;
        progress(i + 1, total);
    }
    ((img + 1.0)? * 0.5)?.clamp(0f32, 1f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddim_times_match_the_library() {
        // torch.linspace(-1, 999, 5).int() = [-1, 249, 499, 749, 999].
        assert_eq!(
            ddim_times(1000, 4),
            vec![(999, 749), (749, 499), (499, 249), (249, -1)]
        );
        let all = ddim_times(10, 10);
        assert_eq!(all.first(), Some(&(9, 8)));
        assert_eq!(all.last(), Some(&(0, -1)));
    }
}
