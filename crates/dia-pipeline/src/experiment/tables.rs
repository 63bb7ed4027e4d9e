//! The results of a grid: one [`CellResult`] per cell, built from the cell's typed
//! [`Report`](dia_eval::report::Report), and what is made from them: `results.csv`,
//! `results.md` (mean ± std of the AUROC over seeds, or the bootstrap interval with one seed;
//! the paired differences against CSI of [`super::paired`]; the reference protocol's numbers
//! of [`super::epochs`]) and `auroc.png`.

use std::path::{Path, PathBuf};

use dia_eval::report::Report;
use serde::{Deserialize, Serialize};

use crate::ddpm_report::DdpmSummary;
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
    /// The reference protocol's number (spec §10.6): the best test AUROC over the epochs
    /// evaluated during training, and its epoch. Optimistic (chosen on the test set); `None`
    /// unless the experiment sets `eval.every_epochs`.
    #[serde(default)]
    pub best_epoch: Option<(usize, f64)>,
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
            best_epoch: None,
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    dia_io::atomic::write_atomic(path, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    Ok(())
}

/// The mean and the sample standard deviation (0 for one value).
pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
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
    value_table(results, |r| Some(r.auroc), true)
}

/// The table of [`markdown_table`] for any per-cell value (`None`: not available); `ci` shows
/// the bootstrap interval of single-seed grids.
fn value_table(
    results: &[CellResult],
    value: impl Fn(&CellResult) -> Option<f64>,
    ci: bool,
) -> String {
    let methods = first_seen(results.iter().map(|r| r.method.as_str()));
    let classes = first_seen(results.iter().map(|r| r.class.as_str()));
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
                .filter_map(&value)
                .collect();
            if v.is_empty() {
                row.push_str(" – |");
                continue;
            }
            let (mu, sd) = mean_std(&v);
            means.push(mu);
            if seeds > 1 {
                row.push_str(&format!(" {mu:.4} ± {sd:.4} |"));
            } else if !ci {
                row.push_str(&format!(" {mu:.4} |"));
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

/// The paired-difference table against `baseline`: one row per method, one column per class
/// and the pooled column, `mean [95 % t-interval] (n)`.
pub fn paired_table(results: &[CellResult], baseline: &str) -> String {
    let diffs = super::paired::paired_differences(results, baseline);
    let classes: Vec<&str> = first_seen(results.iter().map(|r| r.class.as_str()));
    let mut t = format!(
        "| method − {baseline} | {} | pooled |\n|---|{}---|\n",
        classes.join(" | "),
        "---|".repeat(classes.len())
    );
    let methods: Vec<&str> = first_seen(diffs.iter().map(|d| d.method.as_str()));
    let cell = |d: Option<&super::paired::PairedDiff>| match d {
        None => " – |".to_string(),
        Some(d) if d.n < 2 => format!(" {:+.4} (n = 1) |", d.mean),
        Some(d) => format!(
            " {:+.4} [{:+.4}, {:+.4}] (n = {}) |",
            d.mean, d.ci95.0, d.ci95.1, d.n
        ),
    };
    for m in methods {
        let mine = |c: Option<&str>| {
            diffs
                .iter()
                .find(|d| d.method == m && d.class.as_deref() == c)
        };
        let mut row = format!("| {m} |");
        for c in &classes {
            row.push_str(&cell(mine(Some(c))));
        }
        row.push_str(&cell(mine(None)));
        t.push_str(&row);
        t.push('\n');
    }
    t
}

pub(crate) fn first_seen<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// The AUROC dot chart of a grid: normal classes along x, one colour per method, a dot per
/// seed and a bar at the mean.
pub fn plot_grid(path: &Path, results: &[CellResult]) -> Result<()> {
    let classes: Vec<String> = first_seen(results.iter().map(|r| r.class.as_str()))
        .into_iter()
        .map(String::from)
        .collect();
    let series: Vec<dia_eval::charts::Dots> = first_seen(results.iter().map(|r| r.method.as_str()))
        .into_iter()
        .map(|m| dia_eval::charts::Dots {
            label: m.to_string(),
            values: classes
                .iter()
                .map(|c| {
                    results
                        .iter()
                        .filter(|r| r.method == m && r.class == *c)
                        .map(|r| r.auroc)
                        .collect()
                })
                .collect(),
        })
        .collect();
    dia_eval::charts::plot_dots(
        path,
        "AUROC per normal class (one dot per seed, bar: mean)",
        "AUROC (last epoch)",
        &classes,
        &series,
    )?;
    Ok(())
}

/// The markdown of `results.md`: the AUROC table, the paired differences against CSI (when
/// the grid has CSI), the reference protocol's table (when recorded) and the plot.
pub fn results_markdown(results: &[CellResult], ddpms: &[(String, DdpmSummary)]) -> String {
    let seeds = results
        .iter()
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>();
    let mut md = format!(
        "# Results\n\nAUROC (normal = positive), one-class protocol, last epoch; {}.\n\n{}",
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
    md.push_str("\n![AUROC per class and method](auroc.png)\n");
    if results.iter().any(|r| r.method == "csi") && results.iter().any(|r| r.method != "csi") {
        md.push_str(&format!(
            "\n## Against CSI, paired\n\nAUROC(method) − AUROC(csi) on the same class with the same \
             seed: mean, 95 % Student t-interval over the pairs (per class: the seeds; pooled: every \
             class × seed pair), and the number of pairs. The interval covers the spread between \
             training seeds, not the test images (each cell's bootstrap interval is in its report).\n\n{}",
            paired_table(results, "csi")
        ));
    }
    if !ddpms.is_empty() {
        md.push_str(&ddpm_markdown(ddpms));
    }
    if results.iter().any(|r| r.best_epoch.is_some()) {
        md.push_str(&format!(
            "\n## The reference's protocol (optimistic)\n\nThe best test AUROC over the epochs \
             evaluated during training (`eval.every_epochs`), as the reference's `[Best CSI]` \
             lines report it (spec §10.6). It selects the model on the test set, so it is biased \
             upwards; the table above (last epoch) is the honest number.\n\n{}",
            value_table(results, |r| r.best_epoch.map(|b| b.1), false)
        ));
    }
    md
}

/// The DDPMs of the diffusion cells: steps, stop, smoothed loss, dissolving strength.
fn ddpm_markdown(ddpms: &[(String, DdpmSummary)]) -> String {
    let ts: Vec<usize> = ddpms
        .first()
        .map(|d| d.1.strength.iter().map(|s| s.t).collect())
        .unwrap_or_default();
    let mut md = format!(
        "\n## The DDPMs (dissolvers)\n\nOne per normal class; the dissolving strength is mean \
         abs(D(x) − x) / the finest detail removed (docs/diffusion.md) on 16 training images of the \
         class at the last checkpoint \
         (`ddpm/<class>/report.md` has the curve and every checkpoint).\n\n\
         | class | steps | stopped | smoothed loss | {} |\n|---|---|---|---|{}\n",
        ts.iter()
            .map(|t| format!("t = {t}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(ts.len())
    );
    for (class, d) in ddpms {
        md.push_str(&format!(
            "| {class} | {} | {} | {:.4} |",
            d.steps,
            if d.plateaued { "plateau" } else { "steps" },
            d.smoothed_loss
        ));
        for r in &d.strength {
            md.push_str(&format!(
                " {:.4} / {:.1} % |",
                r.mean_abs_change,
                100.0 * r.detail_removed
            ));
        }
        md.push('\n');
    }
    md
}

/// Writes `results.csv`, `results.md` and `auroc.png` into `out` (atomically), from the cells'
/// results and the DDPMs' summaries.
pub fn write_tables(
    out: &Path,
    results: &[CellResult],
    ddpms: &[(String, DdpmSummary)],
) -> Result<()> {
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
            "best_epoch",
            "best_epoch_auroc",
            "run",
        ],
        results.iter().map(|r| {
            let (be, ba) = r
                .best_epoch
                .map_or((String::new(), String::new()), |(e, a)| {
                    (e.to_string(), a.to_string())
                });
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
                be,
                ba,
                r.run.display().to_string(),
            ]
        }),
    )?;
    plot_grid(&out.join("auroc.png"), results)?;
    write_text(&out.join("results.md"), &results_markdown(results, ddpms))?;
    Ok(())
}
