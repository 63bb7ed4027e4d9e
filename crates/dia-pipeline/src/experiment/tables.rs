//! The results of a grid: one [`CellResult`] per cell, built from the cell's typed
//! [`Report`](dia_eval::report::Report), and the tables made from them (`results.csv`,
//! `results.md`: mean ± std of the AUROC over seeds, or the bootstrap interval with one seed).

use std::path::{Path, PathBuf};

use dia_eval::report::Report;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The result of one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The method's name.
    pub method: String,
    /// The normal class(es), joined by `+`.
    pub class: String,
    /// The seed.
    pub seed: u64,
    /// Pooled AUROC.
    pub auroc: f64,
    /// Its bootstrap 95 % interval.
    pub auroc_ci_low: f64,
    /// See `auroc_ci_low`.
    pub auroc_ci_high: f64,
    /// Pooled average precision.
    pub aupr: f64,
    /// Pooled FPR at 95 % TPR.
    pub fpr_at_95_tpr: f64,
    /// Training time of the encoder, seconds over every invocation (NaN when unknown).
    pub train_seconds: f64,
    /// The cell's run directory.
    pub run: PathBuf,
}

impl CellResult {
    /// The result of a cell from its report: a renamed report field is a compile error here.
    pub fn from_report(
        method: &str,
        seed: u64,
        report: &Report,
        train_seconds: f64,
        run: &Path,
    ) -> Self {
        let p = &report.pooled;
        Self {
            method: method.to_string(),
            class: report.normal_classes.join("+"),
            seed,
            auroc: p.auroc,
            auroc_ci_low: p.auroc_ci95.0,
            auroc_ci_high: p.auroc_ci95.1,
            aupr: p.aupr,
            fpr_at_95_tpr: p.fpr_at_95_tpr,
            train_seconds,
            run: run.to_path_buf(),
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    dia_io::atomic::write_atomic(path, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// The markdown table: one row per method, one column per class, mean ± std of the AUROC over
/// seeds, and the mean over classes.
pub fn markdown_table(results: &[CellResult]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    let mut classes: Vec<&str> = Vec::new();
    for r in results {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
        if !classes.contains(&r.class.as_str()) {
            classes.push(&r.class);
        }
    }
    let seeds = results
        .iter()
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut t = format!(
        "| method | {} | mean |\n|---|{}---|\n",
        classes.join(" | "),
        "---|".repeat(classes.len())
    );
    for m in &methods {
        let mut row = format!("| {m} |");
        let mut means = Vec::new();
        for c in &classes {
            let v: Vec<f64> = results
                .iter()
                .filter(|r| r.method == *m && r.class == *c)
                .map(|r| r.auroc)
                .collect();
            if v.is_empty() {
                row.push_str(" – |");
                continue;
            }
            let (mu, sd) = mean_std(&v);
            means.push(mu);
            if seeds > 1 {
                row.push_str(&format!(" {mu:.4} ± {sd:.4} |"));
            } else {
                let r = results
                    .iter()
                    .find(|r| r.method == *m && r.class == *c)
                    .expect("present");
                row.push_str(&format!(
                    " {mu:.4} [{:.3}, {:.3}] |",
                    r.auroc_ci_low, r.auroc_ci_high
                ));
            }
        }
        row.push_str(&format!(" {:.4} |\n", mean_std(&means).0));
        t.push_str(&row);
    }
    t
}

/// Writes `results.csv` and `results.md` into `out` (atomically), from the cells' results.
pub fn write_tables(out: &Path, results: &[CellResult]) -> Result<()> {
    dia_io::csv::write_csv(
        &out.join("results.csv"),
        &[
            "method",
            "class",
            "seed",
            "auroc",
            "auroc_ci_low",
            "auroc_ci_high",
            "aupr",
            "fpr_at_95_tpr",
            "train_seconds",
            "run",
        ],
        results.iter().map(|r| {
            [
                r.method.to_string(),
                r.class.clone(),
                r.seed.to_string(),
                r.auroc.to_string(),
                r.auroc_ci_low.to_string(),
                r.auroc_ci_high.to_string(),
                r.aupr.to_string(),
                r.fpr_at_95_tpr.to_string(),
                r.train_seconds.to_string(),
                r.run.display().to_string(),
            ]
        }),
    )?;
    let seeds = results
        .iter()
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>();
    let md = format!(
        "# Results\n\nAUROC (normal = positive), one-class protocol; {}.\n\n{}",
        if seeds.len() > 1 {
            format!("mean ± std over seeds {seeds:?}")
        } else {
            format!(
                "seed {:?}, bootstrap 95 % interval in brackets",
                seeds.iter().next().expect("one seed")
            )
        },
        markdown_table(results)
    );
    write_text(&out.join("results.md"), &md)?;
    Ok(())
}
