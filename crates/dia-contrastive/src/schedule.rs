//! The learning-rate schedule of CSI and DIA (spec §5.6, §13.5): `GradualWarmupScheduler`
//! (×10 over 10 epochs) around `CosineAnnealingLR(T_max = epochs)`, stepped after every
//! iteration with the fractional epoch.

use serde::{Deserialize, Serialize};

/// Warm-up then cosine, with the reference's stepping.
///
/// ```
/// use dia_contrastive::WarmupCosine;
/// let s = WarmupCosine::reference(1000);
/// assert!((s.lr_at(4.0) - 0.46).abs() < 1e-12);          // epoch 5
/// assert!((s.lr_at(249.0) - 0.865558).abs() < 1e-6);     // epoch 250
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmupCosine {
    /// `lr` of the optimiser (0.1).
    pub base_lr: f64,
    /// Warm-up multiplier (10): the peak LR is `base_lr · multiplier`.
    pub multiplier: f64,
    /// Warm-up length in epochs (10).
    pub warmup_epochs: f64,
    /// `T_max` of the cosine, the number of training epochs (1000).
    pub epochs: f64,
}

impl WarmupCosine {
    /// The reference's settings for `epochs` epochs.
    pub fn reference(epochs: usize) -> Self {
        Self {
            base_lr: 0.1,
            multiplier: 10.0,
            warmup_epochs: 10.0,
            epochs: epochs as f64,
        }
    }

    /// The LR set by `step(f)` at fractional epoch `f` (ignoring the hand-over quirk of
    /// [`LrStepper`]): linear from `base_lr` to `base_lr·multiplier` over the warm-up, then
    /// `peak · ½ (1 + cos(π (f − warmup)/epochs))`.
    pub fn lr_at(&self, f: f64) -> f64 {
        let peak = self.base_lr * self.multiplier;
        if f <= self.warmup_epochs {
            self.base_lr * ((self.multiplier - 1.0) * f / self.warmup_epochs + 1.0)
        } else {
            peak * 0.5
                * (1.0 + (std::f64::consts::PI * (f - self.warmup_epochs) / self.epochs).cos())
        }
    }
}

/// The schedule as the reference steps it: iteration n trains with the LR set after iteration
/// n − 1 (the first with `base_lr`), and at the first step past the warm-up the LR keeps its
/// previous value (the scheduler hands over to the cosine without setting a new LR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrStepper {
    schedule: WarmupCosine,
    lr: f64,
    handed_over: bool,
}

impl LrStepper {
    /// A stepper at the start of training.
    pub fn new(schedule: WarmupCosine) -> Self {
        Self {
            lr: schedule.base_lr,
            schedule,
            handed_over: false,
        }
    }

    /// The LR for the next iteration.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Called after optimiser step `n` of epoch `e` (1-based) with `f = e − 1 + n/L`, where L
    /// is the full loader length (not capped).
    pub fn step(&mut self, f: f64) -> f64 {
        if f > self.schedule.warmup_epochs && !self.handed_over {
            self.handed_over = true;
        } else {
            self.lr = self.schedule.lr_at(f);
        }
        self.lr
    }
}
