//! Anomaly-detection metrics (spec §6): AUROC, average precision and FPR at 95 % TPR, with the
//! *normal* samples as the positive class and higher scores meaning "more normal", as the
//! reference's `roc_auc_score(labels, scores)` call. They equal scikit-learn's on the same
//! vectors, ties included (golden test).

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn check(scores: &[f64], positive: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != positive.len() {
        return Err(Error::Invalid(format!(
            "{} scores for {} labels",
            scores.len(),
            positive.len()
        )));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Invalid(format!("non-finite score {s}")));
    }
    let p = positive.iter().filter(|&&x| x).count();
    let n = positive.len() - p;
    if p == 0 || n == 0 {
        return Err(Error::Invalid(format!(
            "metrics need both classes: {p} normal and {n} anomalous samples"
        )));
    }
    Ok((p, n))
}

/// Exact AUROC: the Mann–Whitney statistic with mid-ranks, i.e. the probability that a random
/// positive scores above a random negative, ties counted ½ (scikit-learn's `roc_auc_score`).
///
/// ```
/// let auc = dia_eval::auroc(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false])?;
/// assert_eq!(auc, 0.875); // one tie out of four pairs
/// # Ok::<(), dia_eval::Error>(())
/// ```
pub fn auroc(scores: &[f64], positive: &[bool]) -> Result<f64> {
    let (p, n) = check(scores, positive)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (p * (p + 1)) as f64 / 2.0;
    Ok(u / (p as f64 * n as f64))
}

/// (threshold, true positives, false positives) at every distinct score, from the highest
/// score down: the points of the ROC and precision–recall curves.
fn curve(scores: &[f64], positive: &[bool]) -> Vec<(f64, usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (idx, &k) in order.iter().enumerate() {
        if positive[k] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = idx + 1 == order.len() || scores[order[idx + 1]] != scores[k];
        if last_of_tie {
            points.push((scores[k], tp, fp));
        }
    }
    points
}

/// Average precision, `Σ (Rₙ − Rₙ₋₁)·Pₙ` over the distinct thresholds (scikit-learn's
/// `average_precision_score`, no interpolation).
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Result<f64> {
    let (p, _) = check(scores, positive)?;
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    for (_, tp, fp) in curve(scores, positive) {
        let recall = tp as f64 / p as f64;
        ap += (recall - last_recall) * tp as f64 / (tp + fp) as f64;
        last_recall = recall;
    }
    Ok(ap)
}

/// False-positive rate at the first threshold (from the top) where the true-positive rate
/// reaches `tpr` — FPR@95 with `tpr = 0.95` (the ROC curve without dropped points).
pub fn fpr_at_tpr(scores: &[f64], positive: &[bool], tpr: f64) -> Result<f64> {
    let (p, n) = check(scores, positive)?;
    if !(0.0..=1.0).contains(&tpr) {
        return Err(Error::Invalid(format!("TPR {tpr} is not in [0, 1]")));
    }
    if tpr == 0.0 {
        return Ok(0.0);
    }
    let point = curve(scores, positive)
        .into_iter()
        .find(|&(_, tp, _)| tp as f64 / p as f64 >= tpr)
        .expect("the last point has TPR 1");
    Ok(point.2 as f64 / n as f64)
}

/// A percentile-bootstrap confidence interval of the AUROC: `resamples` resamples with
/// replacement drawn from a ChaCha8 generator seeded with `seed` (resamples that miss a class
/// are redrawn), and the (1 − level)/2 and (1 + level)/2 quantiles with linear interpolation
/// (numpy's default).
pub fn bootstrap_auroc(
    scores: &[f64],
    positive: &[bool],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<(f64, f64)> {
    check(scores, positive)?;
    if resamples == 0 || !(0.0..1.0).contains(&level) {
        return Err(Error::Invalid(format!(
            "bootstrap needs resamples > 0 and a level in [0, 1), got {resamples} and {level}"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = scores.len();
    let mut values = Vec::with_capacity(resamples);
    let (mut s, mut l) = (vec![0.0; n], vec![false; n]);
    while values.len() < resamples {
        for i in 0..n {
            let k = rng.random_range(0..n);
            s[i] = scores[k];
            l[i] = positive[k];
        }
        if let Ok(a) = auroc(&s, &l) {
            values.push(a);
        }
    }
    values.sort_by(f64::total_cmp);
    let q = |f: f64| {
        let pos = f * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
    };
    Ok((q((1.0 - level) / 2.0), q((1.0 + level) / 2.0)))
}

/// Every metric of a labelled score vector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// AUROC, normal = positive.
    pub auroc: f64,
    /// Bootstrap 95 % interval of the AUROC (1000 resamples).
    pub auroc_ci95: (f64, f64),
    /// Average precision, normal = positive.
    pub aupr: f64,
    /// FPR at 95 % TPR.
    pub fpr_at_95_tpr: f64,
    /// Normal samples.
    pub n_normal: usize,
    /// Anomalous samples.
    pub n_anomalous: usize,
}

impl Metrics {
    /// Computes every metric; `seed` drives the bootstrap.
    pub fn compute(scores: &[f64], normal: &[bool], seed: u64) -> Result<Self> {
        let (p, n) = check(scores, normal)?;
        Ok(Self {
            auroc: auroc(scores, normal)?,
            auroc_ci95: bootstrap_auroc(scores, normal, 1000, 0.95, seed)?,
            aupr: average_precision(scores, normal)?,
            fpr_at_95_tpr: fpr_at_tpr(scores, normal, 0.95)?,
            n_normal: p,
            n_anomalous: n,
        })
    }
}
