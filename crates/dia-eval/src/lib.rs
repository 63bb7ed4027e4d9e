//! Anomaly scoring and metrics for CSI / DIA encoders (spec §6).
//!
//! - [`CsiStatistics`]: the CSI score (and the `simclr` ablation score) from per-shift
//!   features averaged over test-time augmentations;
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
//! **Status:** scoring and metrics are here; feature extraction with test-time augmentation,
//! reports, `dia eval` and `dia predict` land with the rest of issue #6.
#![warn(missing_docs)]

pub mod csi;
pub mod error;
pub mod metrics;

pub use csi::{CsiStatistics, ScoreKind, ShiftFeatures};
pub use error::{Error, Result};
pub use metrics::{auroc, average_precision, bootstrap_auroc, fpr_at_tpr, Metrics};
