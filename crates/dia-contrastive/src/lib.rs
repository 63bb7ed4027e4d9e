//! CSI and DIA contrastive training (spec §5).
//!
//! Batch construction with dissolved negatives (spec §5.2), NT-Xent and NT-Xent-neg (§5.5),
//! LARS and the warm-up + cosine schedule (§5.6), and the training loop with checkpoints.
//!
//! **Status:** skeleton. The implementation lands with issue #5 of the tracker; until then
//! this crate only fixes its place in the workspace and its dependencies.
#![forbid(unsafe_code)]
