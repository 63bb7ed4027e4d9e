//! Paired differences against a baseline method (issue #16): for each method, normal class
//! and seed, `d = AUROC(method) − AUROC(baseline)` on the same class with the same seed, so the
//! class and seed effects both methods share cancel out.
//!
//! For n pairs with mean d̄ and sample standard deviation s, the 95 % interval is Student's
//! t-interval over the pairs:
//!
//! ```text
//! d̄ ± t(0.975, n − 1) · s / √n
//! ```
//!
//! Per class the pairs are the seeds; pooled, every (class, seed) pair. With one pair there is
//! no interval (NaN). The interval covers the variation between seeds (training randomness),
//! not that of the test images, whose bootstrap interval each cell reports on its own.

use super::tables::{first_seen, mean_std, CellResult};

/// The paired difference of one method against the baseline, on one class or pooled.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedDiff {
    /// The method.
    pub method: String,
    /// The normal class, or `None` for all classes pooled.
    pub class: Option<String>,
    /// Pairs (seeds, or class × seed pooled).
    pub n: usize,
    /// Mean difference.
    pub mean: f64,
    /// Sample standard deviation of the differences (NaN for one pair).
    pub std: f64,
    /// The 95 % t-interval (NaN for one pair).
    pub ci95: (f64, f64),
}

/// Student's t quantile t(0.975, df): exact to three decimals for df ≤ 30 (the table every
/// statistics text prints), the Cornish–Fisher expansion around the normal quantile above.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, n) = (1.959_964f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// Mean, sample std and t-interval of `d`.
pub fn t_interval(d: &[f64]) -> (f64, f64, (f64, f64)) {
    let n = d.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, (f64::NAN, f64::NAN));
    }
    let (mean, std) = mean_std(d);
    if n == 1 {
        return (mean, f64::NAN, (f64::NAN, f64::NAN));
    }
    let half = t_975(n - 1) * std / (n as f64).sqrt();
    (mean, std, (mean - half, mean + half))
}

/// Every method's paired differences against `baseline`: per class (in grid order), then
/// pooled. A cell without its baseline twin is left out.
pub fn paired_differences(results: &[CellResult], baseline: &str) -> Vec<PairedDiff> {
    let methods = first_seen(results.iter().map(|r| r.method.as_str()));
    let classes = first_seen(results.iter().map(|r| r.class.as_str()));
    let twin = |r: &CellResult| {
        results
            .iter()
            .find(|b| b.method == baseline && b.class == r.class && b.seed == r.seed)
            .map(|b| r.auroc - b.auroc)
    };
    let mut out = Vec::new();
    for m in methods.iter().filter(|m| **m != baseline) {
        let mine = || results.iter().filter(move |r| r.method == *m);
        let mut push = |class: Option<String>, d: Vec<f64>| {
            if d.is_empty() {
                return;
            }
            let (mean, std, ci95) = t_interval(&d);
            out.push(PairedDiff {
                method: m.to_string(),
                class,
                n: d.len(),
                mean,
                std,
                ci95,
            });
        };
        for c in &classes {
            let d: Vec<f64> = mine().filter(|r| r.class == *c).filter_map(twin).collect();
            push(Some(c.to_string()), d);
        }
        push(None, mine().filter_map(twin).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cell(method: &str, class: &str, seed: u64, auroc: f64) -> CellResult {
        CellResult {
            method: method.into(),
            class: class.into(),
            seed,
            auroc,
            auroc_ci_low: 0.0,
            auroc_ci_high: 1.0,
            aupr: 0.0,
            fpr_at_95_tpr: 0.0,
            train_seconds: 0.0,
            run: PathBuf::new(),
            best_epoch: None,
        }
    }

    #[test]
    fn paired_differences_equal_the_direct_formula() {
        let csi = [[0.70, 0.72, 0.69], [0.84, 0.83, 0.86]];
        let dia = [[0.73, 0.74, 0.69], [0.85, 0.86, 0.85]];
        let classes = ["Shirt", "Coat"];
        let mut results = Vec::new();
        for (c, class) in classes.iter().enumerate() {
            for s in 0..3 {
                results.push(cell("csi", class, s as u64, csi[c][s]));
                results.push(cell("dia-diffusion", class, s as u64, dia[c][s]));
            }
        }
        // A DIA cell whose CSI twin is missing is not paired.
        results.push(cell("dia-diffusion", "Shirt", 9, 0.99));
        let p = paired_differences(&results, "csi");
        assert_eq!(p.len(), 3);
        // Shirt, by hand: d = (0.03, 0.02, 0.00), mean 0.016667, s = 0.015275,
        // half-width 4.303 · s / √3 = 0.037947.
        let shirt = &p[0];
        assert_eq!((shirt.class.as_deref(), shirt.n), (Some("Shirt"), 3));
        assert!((shirt.mean - 0.05 / 3.0).abs() < 1e-12);
        let s = ((0.03f64 - 0.05 / 3.0).powi(2)
            + (0.02f64 - 0.05 / 3.0).powi(2)
            + (0.0f64 - 0.05 / 3.0).powi(2))
            / 2.0;
        assert!((shirt.std - s.sqrt()).abs() < 1e-12);
        let half = 4.303 * s.sqrt() / 3f64.sqrt();
        assert!((shirt.ci95.0 - (shirt.mean - half)).abs() < 1e-12);
        assert!((shirt.ci95.1 - (shirt.mean + half)).abs() < 1e-12);
        assert!((half - 0.037947).abs() < 1e-5);
        // Pooled over the six (class, seed) pairs, df 5.
        let pooled = &p[2];
        assert_eq!((pooled.class.as_deref(), pooled.n), (None, 6));
        let d = [0.03, 0.02, 0.0, 0.01, 0.03, -0.01];
        let m = d.iter().sum::<f64>() / 6.0;
        let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 5.0).sqrt();
        assert!((pooled.mean - m).abs() < 1e-12);
        assert!((pooled.ci95.1 - (m + 2.571 * sd / 6f64.sqrt())).abs() < 1e-12);
    }

    #[test]
    fn one_pair_has_no_interval_and_t_is_the_table() {
        let (m, s, ci) = t_interval(&[0.02]);
        assert_eq!(m, 0.02);
        assert!(s.is_nan() && ci.0.is_nan() && ci.1.is_nan());
        assert_eq!(t_975(2), 4.303);
        // Above the table: close to the tabled 2.000 (df 60) and 1.980 (df 120).
        assert!((t_975(60) - 2.000).abs() < 2e-3);
        assert!((t_975(120) - 1.980).abs() < 2e-3);
        assert!(t_975(0).is_nan());
    }
}
