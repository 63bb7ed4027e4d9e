//! The whole evaluation (spec §6): TTA features of the normal training images and of the test
//! set, the CSI statistics, scores, and metrics pooled and per anomalous class, plus the
//! statistics file saved next to a checkpoint for `dia predict`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use dia_data::Dataset;
use dia_encoder::ResNet18;
use dia_transforms::Shift;
use serde::{Deserialize, Serialize};

use crate::csi::{CsiStatistics, ScoreKind};
use crate::error::{Error, Result};
use crate::features::{extract_features, TtaConfig};
use crate::metrics::Metrics;

/// What to evaluate.
pub struct EvalSetup<'a> {
    /// The encoder (evaluated in eval mode).
    pub model: &'a ResNet18,
    /// The training set and the indices of its normal images (the CSI axes).
    pub train: &'a dyn Dataset,
    /// See `train`.
    pub train_indices: Vec<usize>,
    /// The test set.
    pub test: &'a dyn Dataset,
    /// Labels of the test set that are normal.
    pub normal_labels: Vec<usize>,
    /// The shift (rotation or cut-permutation) and its count K.
    pub shift: Shift,
    /// See `shift`.
    pub k_shift: usize,
    /// CSI or simclr score.
    pub score: ScoreKind,
    /// Test-time augmentation.
    pub tta: TtaConfig,
    /// Seed of the bootstrap interval.
    pub bootstrap_seed: u64,
}

/// One scored test image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// File path or `file[index]`.
    pub source: String,
    /// Class index in the test set.
    pub label: usize,
    /// Class name.
    pub class: String,
    /// Whether the class is normal.
    pub normal: bool,
    /// The score (higher = more normal).
    pub score: f64,
}

/// The metrics of the normal test images against one anomalous class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    /// The anomalous class.
    pub class: String,
    /// Its metrics against all normal test images.
    pub metrics: Metrics,
}

/// Everything an evaluation produces.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// All anomalies pooled (`One_class_real_mean` of the reference).
    pub pooled: Metrics,
    /// One entry per anomalous class (`one_class_j`).
    pub per_class: Vec<ClassResult>,
    /// Mean AUROC over the anomalous classes (`one_class_mean`).
    pub mean_class_auroc: f64,
    /// Every test image with its score.
    pub scores: Vec<Scored>,
    /// The training statistics.
    pub stats: CsiStatistics,
    /// Leave-one-out scores of the normal training images (threshold calibration).
    pub calibration: Vec<f64>,
}

/// Runs the evaluation; `progress(stage, done, total)` reports feature extraction.
pub fn evaluate(s: &EvalSetup, progress: &mut dyn FnMut(&str, usize, usize)) -> Result<Evaluation> {
    let train = extract_features(
        s.model,
        s.train,
        &s.train_indices,
        s.shift,
        s.k_shift,
        &s.tta,
        &mut |d, t| progress("train features", d, t),
    )?;
    let stats = CsiStatistics::fit(&train, s.score)?;
    let calibration = stats.score_leave_one_out(&train)?;
    let test_idx: Vec<usize> = (0..s.test.len()).collect();
    let test = extract_features(
        s.model,
        s.test,
        &test_idx,
        s.shift,
        s.k_shift,
        &s.tta,
        &mut |d, t| progress("test features", d, t),
    )?;
    let values = stats.score(&test)?;
    let classes = s.test.classes();
    let scores: Vec<Scored> = test_idx
        .iter()
        .zip(&values)
        .map(|(&i, &score)| {
            let label = s.test.label(i);
            Scored {
                source: s.test.source(i),
                label,
                class: classes.get(label).cloned().unwrap_or_default(),
                normal: s.normal_labels.contains(&label),
                score,
            }
        })
        .collect();
    let normal: Vec<bool> = scores.iter().map(|x| x.normal).collect();
    let pooled = Metrics::compute(&values, &normal, s.bootstrap_seed)?;
    let mut per_class = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        if s.normal_labels.contains(&label) || !scores.iter().any(|x| x.label == label) {
            continue;
        }
        let pick: Vec<&Scored> = scores
            .iter()
            .filter(|x| x.normal || x.label == label)
            .collect();
        let v: Vec<f64> = pick.iter().map(|x| x.score).collect();
        let n: Vec<bool> = pick.iter().map(|x| x.normal).collect();
        per_class.push(ClassResult {
            class: class.clone(),
            metrics: Metrics::compute(&v, &n, s.bootstrap_seed)?,
        });
    }
    let mean_class_auroc = if per_class.is_empty() {
        pooled.auroc
    } else {
        per_class.iter().map(|c| c.metrics.auroc).sum::<f64>() / per_class.len() as f64
    };
    Ok(Evaluation {
        pooled,
        per_class,
        mean_class_auroc,
        scores,
        stats,
        calibration,
    })
}

/// The statistics file next to a checkpoint: `E.safetensors` → `E.csi.safetensors`.
pub fn statistics_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    checkpoint.with_file_name(format!("{stem}.csi.safetensors"))
}

/// What is stored beside the statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatisticsMeta {
    /// The score kind.
    pub score: ScoreKind,
    /// The shift name (`rotation` / `cutperm`).
    pub shift: String,
    /// K.
    pub k_shift: usize,
    /// The augmentation used for the features.
    pub tta: TtaConfig,
    /// Side of the square images scored.
    pub image_size: Option<usize>,
    /// SHA-256 of the checkpoint file the statistics were computed with: `dia predict` refuses
    /// statistics that do not belong to the checkpoint beside them (issue #19). `None` in
    /// files written before it was recorded.
    #[serde(default)]
    pub checkpoint_sha256: Option<String>,
}

const META_KEY: &str = dia_io::keys::CSI_STATISTICS;

fn file_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Saves statistics and calibration scores atomically.
pub fn save_statistics(
    path: &Path,
    stats: &CsiStatistics,
    calibration: &[f64],
    meta: &StatisticsMeta,
) -> Result<()> {
    let (mut tensors, _) = stats.to_tensors()?;
    tensors.push((
        // Host tensors, written to a file.
        "calibration".into(),
        Tensor::new(calibration, &candle_core::Device::Cpu)?,
    ));
    let json = serde_json::to_string(meta).map_err(|e| file_err(path, e))?;
    let m = std::collections::BTreeMap::from([(META_KEY.to_string(), json)]);
    Ok(dia_io::save_safetensors(path, &tensors, &m)?)
}

/// Loads statistics written by [`save_statistics`].
pub fn load_statistics(path: &Path) -> Result<(CsiStatistics, Vec<f64>, StatisticsMeta)> {
    // The statistics are host f64 vectors (the score is computed on the host).
    let (tensors, m) = dia_io::load_safetensors(path, &candle_core::Device::Cpu)?;
    let meta: StatisticsMeta = m
        .get(META_KEY)
        .ok_or_else(|| file_err(path, "no CSI statistics metadata"))
        .and_then(|j| serde_json::from_str(j).map_err(|e| file_err(path, e)))?;
    let stats = CsiStatistics::from_tensors(&tensors, meta.score).map_err(|e| file_err(path, e))?;
    let calibration = tensors
        .get("calibration")
        .ok_or_else(|| file_err(path, "missing calibration scores"))?
        .to_vec1::<f64>()?;
    Ok((stats, calibration, meta))
}

/// The score below which a fraction `fpr` of the calibration (normal) scores falls: images
/// scoring below it are called anomalous, so about `fpr` of normal images are flagged.
pub fn threshold_at_fpr(calibration: &[f64], fpr: f64) -> Result<f64> {
    if calibration.is_empty() || !(0.0..1.0).contains(&fpr) {
        return Err(Error::Invalid(format!(
            "a threshold needs calibration scores and an FPR in [0, 1), got {} scores and {fpr}",
            calibration.len()
        )));
    }
    let mut v = calibration.to_vec();
    v.sort_by(f64::total_cmp);
    Ok(v[((fpr * v.len() as f64).floor() as usize).min(v.len() - 1)])
}

/// Checks a checkpoint's metadata against what the evaluation expects: each entry is
/// (field name, metadata key, expected value). A key absent from the metadata is not checked
/// (e.g. converted reference checkpoints); a different value is an error naming the field.
pub fn check_metadata(
    path: &Path,
    meta: &HashMap<String, String>,
    expected: &[(&'static str, &str, String)],
) -> Result<()> {
    for (field, key, want) in expected {
        if let Some(have) = meta.get(*key) {
            if have != want {
                return Err(Error::Mismatch {
                    path: path.display().to_string(),
                    field,
                    trained: have.clone(),
                    config: want.clone(),
                });
            }
        }
    }
    Ok(())
}
