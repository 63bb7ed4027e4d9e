//! Anomaly scoring and metrics for CSI / DIA encoders (spec §6).
//!
//! - [`CsiStatistics`]: the CSI score (and the `simclr` ablation score) from per-shift
//!   features averaged over test-time augmentations; its nearest-axis products are
//!   [`PackedAxes`] (f64, the same bits on every batch size and instruction set);
//! - [`auroc`], [`average_precision`], [`fpr_at_tpr`], [`bootstrap_auroc`] and [`Metrics`]:
//!   the numbers reported, equal to scikit-learn's, ties included.
//!
//! ```
//! use dia_eval::Metrics;
//! // Higher = more normal; `true` marks the normal images.
//! let scores = [0.9, 0.8, 0.75, 0.3, 0.2];
//! let normal = [true, true, false, true, false];
//! let m = Metrics::compute(&scores, &normal, 0)?;
//! assert!((m.auroc - 5.0 / 6.0).abs() < 1e-12);
//! assert!(m.auroc_ci95.0 <= m.auroc_ci95.1);
//! # Ok::<(), dia_eval::Error>(())
//! ```
//!
//! - [`extract_features`]: features averaged over test-time augmentations, seeded per
//!   (copy, image) so that scores do not depend on the batch size;
//! - [`evaluate`](fn@evaluate): the whole evaluation, with per-class and pooled metrics;
//! - [`report`]: `report.json`, `scores.csv` and the ROC / histogram plots ([`plot`]).
#![warn(missing_docs)]

pub mod charts;
pub mod csi;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod metrics;
pub mod nearest;
pub mod plot;
pub mod report;

pub use csi::{CsiStatistics, ScoreKind, ShiftFeatures};
pub use error::{Error, Result};
pub use evaluate::{
    check_metadata, evaluate, load_statistics, save_statistics, statistics_path, threshold_at_fpr,
    ClassResult, EvalSetup, Evaluation, Scored, StatisticsMeta,
};
pub use features::{extract_features, TtaConfig};
pub use metrics::{auroc, average_precision, bootstrap_auroc, fpr_at_tpr, Metrics};
pub use nearest::PackedAxes;
