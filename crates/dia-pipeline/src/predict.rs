//! Scoring new images with an evaluated encoder (`dia predict`): the checkpoint, the CSI
//! statistics `dia eval` saved beside it, and the same test-time augmentation, so a new image
//! gets the score a test image of the evaluation would have.

use std::path::Path;

use candle_core::{Device, Tensor};
use dia_data::TensorDataset;
use dia_encoder::{Arch, ResNet18};
use dia_eval::{
    extract_features, load_statistics, statistics_path, threshold_at_fpr, CsiStatistics,
    StatisticsMeta,
};

use crate::error::{Error, Result};
use crate::evaluate::load_encoder;

/// An evaluated encoder, ready to score images.
pub struct Scorer {
    model: ResNet18,
    stats: CsiStatistics,
    calibration: Vec<f64>,
    meta: StatisticsMeta,
}

impl Scorer {
    /// The encoder of `checkpoint` on `device`, with the statistics `dia eval` saved beside it.
    pub fn load(checkpoint: &Path, device: &Device) -> Result<Self> {
        let stats_path = statistics_path(checkpoint);
        if !stats_path.exists() {
            return Err(Error::Statistics(format!(
                "{}: no training statistics ({} is missing); run `dia eval` on this checkpoint first",
                checkpoint.display(),
                stats_path.display()
            )));
        }
        let (stats, calibration, meta) = load_statistics(&stats_path)?;
        // Statistics from another checkpoint (training went on, or a file was copied in) would
        // score against the wrong normal class without a word.
        let actual = dia_io::file_checksum(checkpoint)?;
        match &meta.checkpoint_sha256 {
            Some(recorded) if *recorded == actual => {}
            recorded => {
                return Err(Error::Statistics(format!(
                    "{}: these statistics were computed from {}, not from the checkpoint {} \
                     (SHA-256 {actual}); run `dia eval` on the checkpoint again",
                    stats_path.display(),
                    recorded.as_ref().map_or_else(
                        || "an unrecorded checkpoint (written by an older dia)".to_string(),
                        |r| format!("a checkpoint with SHA-256 {r}")
                    ),
                    checkpoint.display()
                )));
            }
        }
        let (model, _) = load_encoder(checkpoint, device)?;
        Ok(Self {
            model,
            stats,
            calibration,
            meta,
        })
    }

    /// The side of the square images the model was evaluated at.
    pub fn image_size(&self) -> usize {
        self.meta
            .image_size
            .unwrap_or(match self.model.config().arch {
                Arch::ResNet18 => 32,
                Arch::ResNet18ImageNet => 224,
            })
    }

    /// The score of every image of `x` (N, 3, H, W) in [0, 1]: higher is more normal.
    pub fn score(&self, x: &Tensor, sources: &[String]) -> Result<Vec<f64>> {
        let size = self.image_size();
        let (_, _, h, w) = x.dims4()?;
        if (h, w) != (size, size) {
            return Err(Error::Config(format!(
                "images are {h}x{w}, the model was evaluated at {size}x{size}"
            )));
        }
        let data = TensorDataset::new(x, sources.to_vec())?;
        let shift = match self.meta.shift.as_str() {
            "rotation" => dia_transforms::Shift::Rotation,
            "cutperm" => dia_transforms::Shift::CutPerm,
            s => {
                return Err(Error::Config(format!(
                    "unknown shift {s:?} in the statistics"
                )))
            }
        };
        let idx: Vec<usize> = (0..sources.len()).collect();
        let feats = extract_features(
            &self.model,
            &data,
            &idx,
            shift,
            self.meta.k_shift,
            &self.meta.tta,
            &mut |_, _| {},
        )?;
        Ok(self.stats.score(&feats)?)
    }

    /// The score below which a fraction `fpr` of the normal training images falls (their
    /// leave-one-out scores).
    pub fn threshold_at_fpr(&self, fpr: f64) -> Result<f64> {
        Ok(threshold_at_fpr(&self.calibration, fpr)?)
    }
}
