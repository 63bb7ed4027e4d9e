//! The CSI score (spec §6), from features already averaged over test-time augmentations.
//!
//! For each shift k, with z̄ₖ the SimCLR features and ℓ̄ₖ the shift logits of the normal
//! training images: `axisₖ[m] = z̄ₖ(xₘ)/(‖z̄ₖ(xₘ)‖ + 1e-8)`, `w_sim[k] = 1/mean ‖z̄ₖ‖`,
//! `w_shi[k] = 1/mean ℓ̄ₖ[k]` (the raw logit of the right shift, as the reference), and
//!
//! `score(x) = (1/K) Σₖ [ w_sim[k]·maxₘ ⟨z̄ₖ(x), axisₖ[m]⟩ + w_shi[k]·ℓ̄ₖ(x)[k] ]`
//!
//! — higher is more normal. The `simclr` score of the reference's ablations is the same with
//! `w_sim = 1`, `w_shi = 0`.
//!
//! The reference's `w_shi` explodes and changes sign when the mean right-shift logit of the
//! training normals is near zero or negative: the shift term then *rewards* a wrong shift
//! prediction and the score can invert (issue #19: a blur-all-views DIA model got
//! `w_shi = (−21.6, 0.46, 0.65, 0.68)` and a pooled AUROC of 0.30).
//! [`CsiStatistics::weight_warnings`] says so. [`ScoreKind::CsiRobust`] is the documented
//! alternative: `w_shi[k] = 1/(std ℓ̄ₖ[k] + 1e-8)`, the spread of the right-shift logit
//! instead of its mean. It is positive whatever the logits' sign, so a higher right-shift
//! logit always counts as more normal, and it does not explode when the mean crosses zero.

use std::str::FromStr;

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nearest::PackedAxes;

/// Features of one shift for a set of images: `simclr` (N, D) and `shift` logits (N, K).
#[derive(Clone, Debug)]
pub struct ShiftFeatures {
    /// SimCLR projections, unnormalised, averaged over augmentations.
    pub simclr: Tensor,
    /// Shift-head logits, averaged over augmentations.
    pub shift: Tensor,
}

/// Which score to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// The CSI score (the reference's `--ood_score CSI`).
    Csi,
    /// Nearest-neighbour cosine × norm only (`--ood_score simclr`).
    Simclr,
    /// The CSI score with `w_shi[k] = 1/std ℓ̄ₖ[k]` (not the reference; see the module
    /// docs): never negative, so the shift term cannot invert the score.
    #[serde(rename = "csi_robust")]
    CsiRobust,
}

impl FromStr for ScoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csi" => Ok(ScoreKind::Csi),
            "simclr" => Ok(ScoreKind::Simclr),
            "csi_robust" | "csi-robust" => Ok(ScoreKind::CsiRobust),
            _ => Err(Error::Invalid(format!(
                "unknown score {s:?}; expected csi, csi_robust or simclr"
            ))),
        }
    }
}

/// The training statistics of the CSI score: one set of axes and two weights per shift.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_eval::{CsiStatistics, ScoreKind, ShiftFeatures};
/// let dev = Device::Cpu;
/// let feats = |z: Vec<f32>, l: Vec<f32>| ShiftFeatures {
///     simclr: Tensor::from_vec(z.clone(), (z.len() / 2, 2), &dev).unwrap(),
///     shift: Tensor::from_vec(l.clone(), (l.len(), 1), &dev).unwrap(),
/// };
/// // One shift (K = 1), two training images.
/// let train = [feats(vec![1., 0., 0., 2.], vec![2., 2.])];
/// let stats = CsiStatistics::fit(&train, ScoreKind::Csi)?;
/// let test = [feats(vec![3., 0.], vec![1.])];
/// // w_sim = 1/1.5, nearest axis (1, 0) gives 3; w_shi = 1/2 times the logit 1.
/// let s = stats.score(&test)?;
/// assert!((s[0] - (3.0 / 1.5 + 0.5)).abs() < 1e-6);
/// # Ok::<(), dia_eval::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CsiStatistics {
    kind: ScoreKind,
    /// Per shift: the unit axes, row-major (M × D), and D.
    axes: Vec<(Vec<f64>, usize)>,
    /// The same axes packed for the nearest-axis products.
    packed: Vec<PackedAxes>,
    w_sim: Vec<f64>,
    w_shi: Vec<f64>,
    /// Per shift: the mean right-shift logit of the training normals (empty in statistics
    /// files written before it was stored).
    mean_logit: Vec<f64>,
}

fn dims(f: &ShiftFeatures, k: usize, shifts: usize) -> Result<(usize, usize)> {
    let (n, d) = f.simclr.dims2()?;
    let (n2, ks) = f.shift.dims2()?;
    if n != n2 || ks != shifts {
        return Err(Error::Invalid(format!(
            "shift {k}: simclr features {:?} and shift logits {:?} do not fit {shifts} shifts",
            f.simclr.dims(),
            f.shift.dims()
        )));
    }
    Ok((n, d))
}

fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

fn pack(axes: &[(Vec<f64>, usize)]) -> Vec<PackedAxes> {
    axes.iter().map(|(a, d)| PackedAxes::new(a, *d)).collect()
}

fn column(t: &Tensor, k: usize) -> Result<Vec<f64>> {
    host(&t.narrow(1, k, 1)?)
}

impl CsiStatistics {
    /// Computes the axes and weights from the normal training images, one [`ShiftFeatures`]
    /// per shift.
    pub fn fit(train: &[ShiftFeatures], kind: ScoreKind) -> Result<Self> {
        let shifts = train.len();
        if shifts == 0 {
            return Err(Error::Invalid("no shift features".into()));
        }
        let (mut axes, mut w_sim, mut w_shi) = (Vec::new(), Vec::new(), Vec::new());
        let mut mean_logits = Vec::new();
        for (k, f) in train.iter().enumerate() {
            let (m, d) = dims(f, k, shifts)?;
            if m == 0 {
                return Err(Error::Invalid("no training features".into()));
            }
            let mut z = host(&f.simclr)?;
            let mut norm_sum = 0.0;
            for row in z.chunks_mut(d.max(1)) {
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                norm_sum += norm;
                row.iter_mut().for_each(|v| *v /= norm + 1e-8);
            }
            let mean_norm = norm_sum / m as f64;
            let logits = column(&f.shift, k)?;
            let mean_logit = logits.iter().sum::<f64>() / m as f64;
            let std_logit =
                (logits.iter().map(|l| (l - mean_logit).powi(2)).sum::<f64>() / m as f64).sqrt();
            let (ws, wh) = match kind {
                ScoreKind::Csi => (1.0 / mean_norm, 1.0 / mean_logit),
                ScoreKind::CsiRobust => (1.0 / mean_norm, 1.0 / (std_logit + 1e-8)),
                ScoreKind::Simclr => (1.0, 0.0),
            };
            if !ws.is_finite() || !wh.is_finite() {
                return Err(Error::Invalid(format!(
                    "shift {k}: the CSI weights are not finite (mean feature norm {mean_norm}, mean logit {mean_logit})"
                )));
            }
            axes.push((z, d));
            w_sim.push(ws);
            w_shi.push(wh);
            mean_logits.push(mean_logit);
        }
        Ok(Self {
            kind,
            packed: pack(&axes),
            axes,
            w_sim,
            w_shi,
            mean_logit: mean_logits,
        })
    }

    /// Scores test images, one [`ShiftFeatures`] per shift (same order as in `fit`).
    pub fn score(&self, test: &[ShiftFeatures]) -> Result<Vec<f64>> {
        self.check_shifts(test, "test")?;
        let mut parts = Vec::with_capacity(test.len());
        for (k, f) in test.iter().enumerate() {
            let (_, d) = dims(f, k, test.len())?;
            let da = self.axes[k].1;
            if d != da {
                return Err(Error::Invalid(format!(
                    "shift {k}: test features have dimension {d}, the training axes {da}"
                )));
            }
            // On the host whatever the encoder's device: the score is f64 and must not depend
            // on a device's kernels (batch-size invariance, see the nearest module).
            let nearest = self.packed[k].nearest(&host(&f.simclr)?);
            parts.push((nearest, column(&f.shift, k)?));
        }
        self.combine(parts, "test")
    }

    /// Scores the training images themselves, each against the axes of the *other* training
    /// images (leave-one-out): an unbiased sample of normal scores, used to calibrate a
    /// threshold at a chosen false-positive rate without a separate validation set.
    pub fn score_leave_one_out(&self, train: &[ShiftFeatures]) -> Result<Vec<f64>> {
        self.check_shifts(train, "training")?;
        let mut parts = Vec::with_capacity(train.len());
        for (k, f) in train.iter().enumerate() {
            let (n, d) = dims(f, k, train.len())?;
            let axes = &self.axes[k].0;
            if axes.len() != n * d {
                return Err(Error::Invalid(format!(
                    "shift {k}: {n} training images for {} axes",
                    axes.len() / d.max(1)
                )));
            }
            let z = host(&f.simclr)?;
            let nearest: Vec<f64> = z
                .par_chunks(d.max(1))
                .enumerate()
                .map(|(i, x)| {
                    axes.chunks(d.max(1))
                        .enumerate()
                        .filter(|(m, _)| *m != i)
                        .map(|(_, a)| x.iter().zip(a).map(|(p, q)| p * q).sum::<f64>())
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect();
            parts.push((nearest, column(&f.shift, k)?));
        }
        self.combine(parts, "training")
    }

    /// One [`ShiftFeatures`] per shift of the statistics.
    fn check_shifts(&self, features: &[ShiftFeatures], what: &str) -> Result<()> {
        let shifts = self.axes.len();
        if features.len() != shifts {
            return Err(Error::Invalid(format!(
                "{} shifts of {what} features for statistics of {shifts}",
                features.len()
            )));
        }
        Ok(())
    }

    /// The CSI score (spec §6) from each shift's nearest-axis similarities and shift logits:
    /// the mean over shifts of `w_sim[k]·nearest + w_shi[k]·logit`.
    fn combine(&self, parts: Vec<(Vec<f64>, Vec<f64>)>, what: &str) -> Result<Vec<f64>> {
        let shifts = parts.len();
        let mut scores: Option<Vec<f64>> = None;
        for (k, (nearest, logits)) in parts.into_iter().enumerate() {
            let n = nearest.len();
            let acc = scores.get_or_insert_with(|| vec![0.0; n]);
            if acc.len() != n {
                return Err(Error::Invalid(format!(
                    "shift {k} has {n} {what} images, shift 0 has {}",
                    acc.len()
                )));
            }
            for i in 0..n {
                acc[i] += self.w_sim[k] * nearest[i] + self.w_shi[k] * logits[i];
            }
        }
        Ok(scores
            .unwrap_or_default()
            .into_iter()
            .map(|s| s / shifts as f64)
            .collect())
    }

    /// The statistics as named f64 tensors (`axes.K` of shape (M, D), `w_sim`, `w_shi`) and
    /// the score kind, for saving next to a checkpoint.
    pub fn to_tensors(&self) -> Result<(Vec<(String, Tensor)>, ScoreKind)> {
        // Host tensors: the statistics live in host f64 vectors and go to a file.
        let dev = candle_core::Device::Cpu;
        let mut out = Vec::new();
        for (k, (a, d)) in self.axes.iter().enumerate() {
            let t = Tensor::from_vec(a.clone(), (a.len() / (*d).max(1), *d), &dev)?;
            out.push((format!("axes.{k}"), t));
        }
        out.push(("w_sim".into(), Tensor::new(self.w_sim.as_slice(), &dev)?));
        out.push(("w_shi".into(), Tensor::new(self.w_shi.as_slice(), &dev)?));
        if !self.mean_logit.is_empty() {
            out.push((
                "mean_logit".into(),
                Tensor::new(self.mean_logit.as_slice(), &dev)?,
            ));
        }
        Ok((out, self.kind))
    }

    /// Rebuilds statistics written by [`CsiStatistics::to_tensors`].
    pub fn from_tensors(
        tensors: &std::collections::HashMap<String, Tensor>,
        kind: ScoreKind,
    ) -> Result<Self> {
        let vec = |name: &str| -> Result<Vec<f64>> {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::Invalid(format!("statistics: missing {name}")))?;
            host(t)
        };
        let (w_sim, w_shi) = (vec("w_sim")?, vec("w_shi")?);
        if w_sim.len() != w_shi.len() || w_sim.is_empty() {
            return Err(Error::Invalid(
                "statistics: w_sim and w_shi differ in length".into(),
            ));
        }
        let mut axes = Vec::new();
        for k in 0..w_sim.len() {
            let t = tensors
                .get(&format!("axes.{k}"))
                .ok_or_else(|| Error::Invalid(format!("statistics: missing axes.{k}")))?;
            let (m, d) = t.dims2()?;
            if m == 0 {
                return Err(Error::Invalid(format!("statistics: axes.{k} is empty")));
            }
            axes.push((host(t)?, d));
        }
        let mean_logit = match tensors.get("mean_logit") {
            Some(t) => host(t)?,
            None => Vec::new(),
        };
        Ok(Self {
            kind,
            packed: pack(&axes),
            axes,
            w_sim,
            w_shi,
            mean_logit,
        })
    }

    /// Shifts K.
    pub fn shifts(&self) -> usize {
        self.axes.len()
    }

    /// The score kind.
    pub fn kind(&self) -> ScoreKind {
        self.kind
    }
    /// `w_sim` per shift.
    pub fn w_sim(&self) -> &[f64] {
        &self.w_sim
    }
    /// `w_shi` per shift.
    pub fn w_shi(&self) -> &[f64] {
        &self.w_shi
    }
    /// The mean right-shift logit of the training normals per shift (empty for statistics
    /// files written before it was stored).
    pub fn mean_logit(&self) -> &[f64] {
        &self.mean_logit
    }

    /// What is suspicious about the shift weights: a negative `w_shi` (the shift term then
    /// rewards wrong shift predictions, and the score can invert) or one more than ten times
    /// the median magnitude (a mean logit near zero). Empty when the weights look sound.
    pub fn weight_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, &w) in self.w_shi.iter().enumerate() {
            // The (lower) median magnitude of the other shifts' weights.
            let mut others: Vec<f64> = (self.w_shi.iter().enumerate())
                .filter(|(j, _)| *j != k)
                .map(|(_, w)| w.abs())
                .collect();
            others.sort_by(f64::total_cmp);
            let median = others
                .get(others.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0.0);
            let logit = self.mean_logit.get(k).map_or(String::new(), |l| {
                format!(" (mean right-shift logit {l:.4})")
            });
            if w < 0.0 {
                out.push(format!(
                    "w_shi[{k}] = {w:.4} is negative{logit}: the shift term rewards wrong shift \
                     predictions and can invert the score; compare with --score csi_robust"
                ));
            } else if median > 0.0 && w > 10.0 * median {
                out.push(format!(
                    "w_shi[{k}] = {w:.4} is over ten times the others' median {median:.4}{logit}: \
                     this shift dominates the score; compare with --score csi_robust"
                ));
            }
        }
        out
    }
}
