//! Anomaly scoring and metrics for CSI/DIA encoders (spec §6).
//!
//! Feature extraction with test-time augmentation, the CSI score, AUROC / AUPR / FPR@95 with
//! bootstrap intervals, and the reports of `dia eval`.
//!
//! **Status:** skeleton. The implementation lands with issue #6 of the tracker; until then
//! this crate only fixes its place in the workspace and its dependencies.
#![forbid(unsafe_code)]
