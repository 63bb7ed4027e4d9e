//! The files of `dia eval`: `report.json` (every metric, the config, the checkpoint's
//! metadata, seeds and counts), `scores.csv` (source, label, class, normal, score), `roc.png`
//! and `scores.png`, and a short text table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::evaluate::{ClassResult, Evaluation, Scored, StatisticsMeta};
use crate::metrics::Metrics;
use crate::plot::{plot_histograms, plot_roc, Curve};

/// The content of `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The checkpoint evaluated.
    pub checkpoint: String,
    /// Its metadata (mode, shift, normal classes, epoch, ...).
    pub checkpoint_metadata: BTreeMap<String, String>,
    /// The evaluation settings.
    pub evaluation: StatisticsMeta,
    /// The resolved training / evaluation config.
    pub config: serde_json::Value,
    /// Normal classes of the test set.
    pub normal_classes: Vec<String>,
    /// Normal training images used as CSI axes.
    pub n_train_normal: usize,
    /// All anomalies pooled.
    pub pooled: Metrics,
    /// Per anomalous class.
    pub per_class: Vec<ClassResult>,
    /// Mean AUROC over anomalous classes.
    pub mean_class_auroc: f64,
    /// Seconds the evaluation took.
    pub seconds: f64,
    /// The score's weights and what is suspicious about them (absent from older reports).
    #[serde(default)]
    pub weights: Option<ScoreWeights>,
}

/// The CSI weights an evaluation scored with (spec §6), with their warnings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreWeights {
    /// `w_sim` per shift.
    pub w_sim: Vec<f64>,
    /// `w_shi` per shift.
    pub w_shi: Vec<f64>,
    /// The mean right-shift logit of the training normals per shift.
    pub mean_shift_logit: Vec<f64>,
    /// [`CsiStatistics::weight_warnings`](crate::CsiStatistics::weight_warnings).
    pub warnings: Vec<String>,
}

impl ScoreWeights {
    /// The weights of `stats`.
    pub fn of(stats: &crate::CsiStatistics) -> Self {
        Self {
            w_sim: stats.w_sim().to_vec(),
            w_shi: stats.w_shi().to_vec(),
            mean_shift_logit: stats.mean_logit().to_vec(),
            warnings: stats.weight_warnings(),
        }
    }
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Writes the four report files into `dir`; returns their paths.
pub fn write_report(dir: &Path, report: &Report, eval: &Evaluation) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let json = dir.join("report.json");
    let text = serde_json::to_string_pretty(report).map_err(|e| file_err(&json, e))?;
    dia_io::atomic::write_atomic(&json, |f| f.write_all(text.as_bytes()))?;
    let csv = dir.join("scores.csv");
    dia_io::csv::write_csv(
        &csv,
        &SCORES_HEADER,
        eval.scores.iter().map(|s| {
            [
                s.source.clone(),
                s.label.to_string(),
                s.class.clone(),
                s.normal.to_string(),
                s.score.to_string(),
            ]
        }),
    )?;
    let scores: Vec<f64> = eval.scores.iter().map(|s| s.score).collect();
    let normal: Vec<bool> = eval.scores.iter().map(|s| s.normal).collect();
    let roc = dir.join("roc.png");
    let curve = Curve {
        label: format!("{:?}", report.evaluation.score).to_lowercase(),
        scores: &scores,
        normal: &normal,
    };
    plot_roc(
        &roc,
        &format!("ROC, normal: {}", report.normal_classes.join(", ")),
        &[curve],
    )?;
    let hist = dir.join("scores.png");
    plot_histograms(&hist, "scores of the test images", &scores, &normal)?;
    Ok(vec![json, csv, roc, hist])
}

/// The columns of `scores.csv`.
const SCORES_HEADER: [&str; 5] = ["source", "label", "class", "normal", "score"];

/// Reads the `scores.csv` that [`write_report`] wrote: every test image with its score.
pub fn read_scores(path: &Path) -> Result<Vec<Scored>> {
    let (header, rows) = dia_io::csv::read_csv(path)?;
    if header != SCORES_HEADER {
        return Err(file_err(path, "not a scores.csv written by dia eval"));
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, f)| {
            let bad = |what: &str| file_err(path, format!("line {}: {what}", i + 2));
            let [source, label, class, normal, score] = f.as_slice() else {
                return Err(bad("expected 5 fields"));
            };
            Ok(Scored {
                source: source.clone(),
                label: label.parse().map_err(|_| bad("bad label"))?,
                class: class.clone(),
                normal: normal.parse().map_err(|_| bad("bad normal flag"))?,
                score: score.parse().map_err(|_| bad("bad score"))?,
            })
        })
        .collect()
}

/// A short table of the metrics, for the terminal.
pub fn table(report: &Report) -> String {
    let row = |name: &str, m: &Metrics| {
        format!(
            "{name:<24} {:>6.4} [{:.4}, {:.4}] {:>6.4} {:>8.4} {:>6} {:>6}\n",
            m.auroc,
            m.auroc_ci95.0,
            m.auroc_ci95.1,
            m.aupr,
            m.fpr_at_95_tpr,
            m.n_normal,
            m.n_anomalous
        )
    };
    let mut t = format!(
        "{:<24} {:>6} {:>17} {:>6} {:>8} {:>6} {:>6}\n",
        "anomalies", "AUROC", "95% CI", "AUPR", "FPR@95", "normal", "anom."
    );
    for c in &report.per_class {
        t.push_str(&row(&c.class, &c.metrics));
    }
    t.push_str(&row("all (pooled)", &report.pooled));
    t.push_str(&format!(
        "mean AUROC over classes: {:.4}\n",
        report.mean_class_auroc
    ));
    if let Some(w) = &report.weights {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.push_str(&format!(
            "score weights: w_sim ({}), w_shi ({}); mean right-shift logits ({})\n",
            list(&w.w_sim),
            list(&w.w_shi),
            list(&w.mean_shift_logit)
        ));
        for warning in &w.warnings {
            t.push_str(&format!("WARNING: {warning}\n"));
        }
    }
    t
}
