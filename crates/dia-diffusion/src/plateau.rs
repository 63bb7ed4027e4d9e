//! Stopping DDPM training when its loss has plateaued (issue #16), instead of after a fixed
//! number of steps.
//!
//! The DDPM's L1 ε-loss is noisy from step to step (every image draws its own t), so it is
//! judged through its moving average over `window` steps: training stops at step `s` when
//! `s ≥ min_steps`, `s ≥ 2·window`, and the smoothed loss fell by less than `threshold`
//! (relative) over the last `window` steps:
//!
//! ```text
//! m(s) = mean(loss[s−window+1 ..= s]),   stop when  (m(s−window) − m(s)) / m(s−window) < threshold
//! ```
//!
//! The decision reads only the recorded losses, which a resumed run reproduces exactly, so a
//! resumed run stops at the same step as an uninterrupted one.
//!
//! ```
//! use dia_diffusion::plateau::{plateaued, PlateauConfig};
//! let cfg = PlateauConfig { window: 10, threshold: 0.01, min_steps: 0 };
//! let falling: Vec<f64> = (0..40).map(|i| 1.0 / (1.0 + i as f64)).collect();
//! assert!(!plateaued(&falling, &cfg));
//! assert!(plateaued(&[0.2; 40], &cfg));
//! ```

use serde::{Deserialize, Serialize};

fn d_window() -> usize {
    100
}
fn d_threshold() -> f64 {
    0.02
}

/// When a DDPM run counts as converged (the `plateau` key of a DDPM config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// Steps of the moving average, and the span over which its fall is measured.
    #[serde(default = "d_window")]
    pub window: usize,
    /// The relative fall of the smoothed loss over one window below which training stops.
    #[serde(default = "d_threshold")]
    pub threshold: f64,
    /// Never stop before this step.
    #[serde(default)]
    pub min_steps: usize,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self {
            window: d_window(),
            threshold: d_threshold(),
            min_steps: 0,
        }
    }
}

impl PlateauConfig {
    /// Checks the values the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.window == 0 {
            return Err("plateau.window must be positive".into());
        }
        if !(self.threshold.is_finite() && (0.0..1.0).contains(&self.threshold)) {
            return Err(format!(
                "plateau.threshold: {} is outside [0, 1)",
                self.threshold
            ));
        }
        Ok(())
    }
}

/// The moving average of `losses` over the last `window` steps (fewer at the start): the
/// "smoothed" curve of reports and of [`plateaued`].
pub fn moving_average(losses: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let mut out = Vec::with_capacity(losses.len());
    let mut sum = 0.0;
    for (i, &l) in losses.iter().enumerate() {
        sum += l;
        if i >= window {
            sum -= losses[i - window];
        }
        out.push(sum / (i + 1).min(window) as f64);
    }
    out
}

/// The mean of `losses[end − window .. end]`, summed directly (no running sum, so no drift).
fn window_mean(losses: &[f64], end: usize, window: usize) -> f64 {
    losses[end - window..end].iter().sum::<f64>() / window as f64
}

/// The relative fall of the smoothed loss over the last window, once two windows exist.
pub fn relative_fall(losses: &[f64], window: usize) -> Option<f64> {
    let s = losses.len();
    if window == 0 || s < 2 * window {
        return None;
    }
    let before = window_mean(losses, s - window, window);
    let now = window_mean(losses, s, window);
    Some((before - now) / before)
}

/// Whether training with this loss history (one entry per step, step 1 first) should stop.
pub fn plateaued(losses: &[f64], cfg: &PlateauConfig) -> bool {
    losses.len() >= cfg.min_steps
        && relative_fall(losses, cfg.window).is_some_and(|f| f < cfg.threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_matches_direct_means() {
        let l: Vec<f64> = (0..25).map(|i| ((i * 7) % 11) as f64).collect();
        let m = moving_average(&l, 4);
        for (i, &v) in m.iter().enumerate() {
            let lo = (i + 1).saturating_sub(4);
            let direct = l[lo..=i].iter().sum::<f64>() / (i + 1 - lo) as f64;
            assert!((v - direct).abs() < 1e-12, "{i}: {v} vs {direct}");
        }
    }

    #[test]
    fn stops_only_after_two_windows_min_steps_and_a_flat_loss() {
        let cfg = PlateauConfig {
            window: 5,
            threshold: 0.05,
            min_steps: 0,
        };
        // Flat, but fewer than two windows: no decision yet.
        assert!(!plateaued(&[1.0; 9], &cfg));
        assert!(plateaued(&[1.0; 10], &cfg));
        // Falling 10 % per window: keeps going; 1 % per window: stops.
        let fall = |r: f64| -> Vec<f64> { (0..10).map(|i| r.powi(i / 5)).collect() };
        assert!(!plateaued(&fall(0.9), &cfg));
        assert!(plateaued(&fall(0.99), &cfg));
        // A rising loss has a negative fall: stops (nothing more to gain).
        assert!(plateaued(&fall(1.1), &cfg));
        let late = PlateauConfig {
            min_steps: 11,
            ..cfg.clone()
        };
        assert!(!plateaued(&[1.0; 10], &late));
        assert!(plateaued(&[1.0; 11], &late));
        // The fall is measured between the two last windows exactly.
        let l = [4.0, 4.0, 2.0, 2.0, 1.0, 1.0];
        assert_eq!(relative_fall(&l, 2), Some(0.5));
    }

    #[test]
    fn bad_configs_are_refused() {
        for (w, t) in [(0, 0.1), (5, -0.1), (5, 1.0), (5, f64::NAN)] {
            let c = PlateauConfig {
                window: w,
                threshold: t,
                min_steps: 0,
            };
            assert!(c.validate().is_err(), "{w} {t}");
        }
        assert!(PlateauConfig::default().validate().is_ok());
    }
}
