//! Evaluating one trained encoder (spec §6): load the checkpoint on a device, check it against
//! the training config, score the test split, write the report files and the statistics
//! `dia predict` reads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use dia_contrastive::TrainConfig;
use dia_data::{resolve_class, Split};
use dia_encoder::{load_checkpoint, load_reference_checkpoint, ResNet18};
use dia_eval::report::{write_report, Report, ScoreWeights};
use dia_eval::{
    check_metadata, evaluate, save_statistics, statistics_path, EvalSetup, ScoreKind,
    StatisticsMeta, TtaConfig,
};
use dia_io::keys;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// An encoder from our safetensors checkpoint (with its metadata) or from the reference's
/// PyTorch file (no metadata), on `device`.
pub fn load_encoder(path: &Path, device: &Device) -> Result<(ResNet18, HashMap<String, String>)> {
    let path = &dia_io::hub::resolve(&path.to_string_lossy())?;
    if path.extension().is_some_and(|e| e == "safetensors") {
        Ok(load_checkpoint(path, device)?)
    } else {
        Ok((load_reference_checkpoint(path, device)?, HashMap::new()))
    }
}

/// How to evaluate a checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    /// `csi` or `simclr`.
    pub score: ScoreKind,
    /// Test-time augmentation (its seed also seeds the bootstrap).
    pub tta: TtaConfig,
}

/// Evaluates `ckpt` (trained with `cfg`) on `device` and writes the report into `out_dir`;
/// also saves the training statistics next to the checkpoint. Returns the report and the
/// files written.
pub fn evaluate_checkpoint(
    cfg: &TrainConfig,
    ckpt: &Path,
    out_dir: &Path,
    opts: EvalOptions,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(Report, Vec<PathBuf>)> {
    let EvalOptions { score, tta } = opts;
    // Taken before the weights are read: the statistics name the exact file they came from.
    let checkpoint_sha256 = Some(dia_io::file_checksum(&dia_io::hub::resolve(
        &ckpt.to_string_lossy(),
    )?)?);
    // Held until the report is written: two evaluations never mix their files (issue #19).
    let _lock = dia_io::run::RunLock::acquire(out_dir)?;
    let (model, meta) = load_encoder(ckpt, device)?;
    let enc = model.config();
    check_metadata(
        ckpt,
        &meta,
        &[
            ("mode", keys::MODE, json(&cfg.mode)),
            (
                "shift_trans_type",
                keys::SHIFT_TRANS_TYPE,
                cfg.shift_trans_type.to_string(),
            ),
            (
                "normal_classes",
                keys::NORMAL_CLASSES,
                json(&cfg.normal_classes),
            ),
            ("image_size", keys::IMAGE_SIZE, json(&cfg.image_size)),
        ],
    )?;
    if enc.arch != cfg.encoder.arch {
        return Err(Error::Config(format!(
            "{}: the checkpoint is a {:?} encoder, the config says arch = {:?}",
            ckpt.display(),
            enc.arch,
            cfg.encoder.arch
        )));
    }
    if enc.k_shift != dia_transforms::K_SHIFT {
        return Err(Error::Config(format!(
            "{}: the checkpoint's shift head has {} outputs, the evaluation uses k_shift = {}",
            ckpt.display(),
            enc.k_shift,
            dia_transforms::K_SHIFT
        )));
    }
    if cfg.normal_classes.is_empty() {
        return Err(Error::Config("evaluation needs normal_classes (the one-class protocol): with every class normal there is no anomaly to score".into()));
    }
    let size = cfg.image_size.map(|s| (s, s));
    let train = cfg.data.open(Split::Train, size)?;
    let test = cfg.data.open(Split::Test, size)?;
    // The normal classes' labels in the test split (which may list its classes in another
    // order than the training split).
    let normal_labels = cfg
        .normal_classes
        .iter()
        .map(|c| resolve_class(test.classes(), c))
        .collect::<dia_data::Result<Vec<usize>>>()?;
    let train_indices = dia_data::normal_indices(train.as_ref(), &cfg.normal_classes)?;
    let setup = EvalSetup {
        model: &model,
        train: train.as_ref(),
        train_indices: train_indices.clone(),
        test: test.as_ref(),
        normal_labels,
        shift: cfg.shift_trans_type.shift,
        k_shift: enc.k_shift,
        score,
        tta,
        bootstrap_seed: tta.seed,
    };
    let start = Instant::now();
    let result = evaluate(&setup, &mut |stage, done, total| {
        progress.set_stage(stage);
        progress.set_length(total as u64);
        progress.set_position(done as u64);
    })?;
    let smeta = StatisticsMeta {
        score,
        shift: cfg.shift_trans_type.shift.name().to_string(),
        k_shift: enc.k_shift,
        tta,
        image_size: cfg.image_size,
        checkpoint_sha256,
    };
    save_statistics(
        &statistics_path(ckpt),
        &result.stats,
        &result.calibration,
        &smeta,
    )?;
    let config = serde_json::to_value(cfg).map_err(|e| Error::Config(e.to_string()))?;
    let report = Report {
        checkpoint: ckpt.display().to_string(),
        checkpoint_metadata: meta.into_iter().collect::<BTreeMap<_, _>>(),
        evaluation: smeta,
        config,
        normal_classes: cfg.normal_classes.clone(),
        n_train_normal: train_indices.len(),
        pooled: result.pooled,
        per_class: result.per_class.clone(),
        mean_class_auroc: result.mean_class_auroc,
        seconds: start.elapsed().as_secs_f64(),
        weights: Some(ScoreWeights::of(&result.stats)),
    };
    for w in report.weights.iter().flat_map(|w| &w.warnings) {
        tracing::warn!("{}: {w}", ckpt.display());
    }
    let files = write_report(out_dir, &report, &result)?;
    Ok((report, files))
}

/// Reads a `report.json` written by [`evaluate_checkpoint`], typed.
pub fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A config field as the trainer writes it into the checkpoint's metadata (JSON).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
