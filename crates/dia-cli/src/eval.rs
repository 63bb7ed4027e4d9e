//! `dia eval` and `dia predict`: CSI scores, metrics and reports (spec §6).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use dia_contrastive::TrainConfig;
use dia_data::{resolve_class, Split, TensorDataset};
use dia_encoder::{load_checkpoint, load_reference_checkpoint, Arch, ResNet18};
use dia_eval::report::{table, write_report, Report};
use dia_eval::{
    check_metadata, evaluate, extract_features, load_statistics, save_statistics, statistics_path,
    threshold_at_fpr, EvalSetup, ScoreKind, StatisticsMeta, TtaConfig,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory of `dia train` (its config.yaml and last.safetensors).
    #[arg(long, conflicts_with_all = ["checkpoint", "config"])]
    run: Option<PathBuf>,
    /// An encoder checkpoint (with --config).
    #[arg(long, requires = "config")]
    checkpoint: Option<PathBuf>,
    /// The experiment config the checkpoint was trained with (data, normal class, shift).
    #[arg(long, requires = "checkpoint")]
    config: Option<PathBuf>,
    /// Where the report goes (default: RUN/eval, or next to the checkpoint).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// `csi` or `simclr`.
    #[arg(long, default_value = "csi")]
    score: ScoreKind,
    /// Augmented copies per image and shift.
    #[arg(long, default_value_t = 10)]
    ood_samples: usize,
    /// Crop area of the evaluation augmentation.
    #[arg(long, default_value_t = 0.54)]
    resize_factor: f32,
    /// Crop area drawn in [resize_factor, 1] instead of fixed.
    #[arg(long)]
    no_resize_fix: bool,
    /// Images per forward pass (does not change the scores).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Seed of the augmentations and the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>15} [{bar:30}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn load_model(path: &Path, device: &Device) -> Result<(ResNet18, HashMap<String, String>)> {
    let path = &crate::embed::local_path(path)?;
    if path.extension().is_some_and(|e| e == "safetensors") {
        Ok(load_checkpoint(path, device)?)
    } else {
        Ok((load_reference_checkpoint(path, device)?, HashMap::new()))
    }
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let (cfg_path, ckpt, default_out) = match (&args.run, &args.checkpoint, &args.config) {
        (Some(run), _, _) => (
            run.join("config.yaml"),
            run.join("last.safetensors"),
            run.join("eval"),
        ),
        (None, Some(c), Some(cfg)) => (
            cfg.clone(),
            c.clone(),
            c.parent().unwrap_or(Path::new(".")).join("eval"),
        ),
        _ => bail!("give --run RUN_DIR, or --checkpoint E --config C.yaml"),
    };
    let cfg: TrainConfig = crate::train::read_config(&cfg_path)?;
    let out_dir = args.output.clone().unwrap_or(default_out);
    let tta = TtaConfig {
        ood_samples: args.ood_samples,
        resize_factor: args.resize_factor,
        resize_fix: !args.no_resize_fix,
        hflip: true,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    let device = args.device.open()?;
    let bar = progress_bar();
    let (report, files) =
        evaluate_checkpoint(&cfg, &ckpt, &out_dir, args.score, tta, &device, &bar)?;
    bar.finish_and_clear();
    print!("{}", table(&report));
    for f in files {
        println!("wrote {}", f.display());
    }
    println!(
        "training statistics for dia predict: {}",
        statistics_path(&ckpt).display()
    );
    Ok(())
}

/// Evaluates `ckpt` (trained with `cfg`) and writes the report into `out_dir`; also saves the
/// training statistics next to the checkpoint. Returns the report and the files written.
pub fn evaluate_checkpoint(
    cfg: &TrainConfig,
    ckpt: &Path,
    out_dir: &Path,
    score: ScoreKind,
    tta: TtaConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<(Report, Vec<PathBuf>)> {
    let (model, meta) = load_model(ckpt, device)?;
    let enc = model.config();
    check_metadata(
        ckpt,
        &meta,
        &[
            ("mode", "dia.mode", serde_json::to_string(&cfg.mode)?),
            (
                "shift_trans_type",
                "dia.shift_trans_type",
                cfg.shift_trans_type.to_string(),
            ),
            (
                "normal_classes",
                "dia.normal_classes",
                serde_json::to_string(&cfg.normal_classes)?,
            ),
            (
                "image_size",
                "dia.image_size",
                serde_json::to_string(&cfg.image_size)?,
            ),
        ],
    )?;
    if enc.arch != cfg.encoder.arch {
        bail!(
            "{}: the checkpoint is a {:?} encoder, the config says arch = {:?}",
            ckpt.display(),
            enc.arch,
            cfg.encoder.arch
        );
    }
    if enc.k_shift != dia_transforms::K_SHIFT {
        bail!(
            "{}: the checkpoint's shift head has {} outputs, the evaluation uses k_shift = {}",
            ckpt.display(),
            enc.k_shift,
            dia_transforms::K_SHIFT
        );
    }
    if cfg.normal_classes.is_empty() {
        bail!("evaluation needs normal_classes (the one-class protocol): with every class normal there is no anomaly to score");
    }
    let size = cfg.image_size.map(|s| (s, s));
    let train = cfg.data.open(Split::Train, size)?;
    let test = cfg.data.open(Split::Test, size)?;
    let resolve = |ds: &dyn dia_data::Dataset| -> Result<Vec<usize>> {
        cfg.normal_classes
            .iter()
            .map(|c| Ok(resolve_class(ds.classes(), c)?))
            .collect()
    };
    let train_labels = resolve(train.as_ref())?;
    let normal_labels = resolve(test.as_ref())?;
    let train_indices: Vec<usize> = (0..train.len())
        .filter(|&i| train_labels.contains(&train.label(i)))
        .collect();
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
        bar.set_prefix(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    let smeta = StatisticsMeta {
        score,
        shift: cfg.shift_trans_type.shift.name().to_string(),
        k_shift: enc.k_shift,
        tta,
        image_size: cfg.image_size,
    };
    save_statistics(
        &statistics_path(ckpt),
        &result.stats,
        &result.calibration,
        &smeta,
    )?;
    let report = Report {
        checkpoint: ckpt.display().to_string(),
        checkpoint_metadata: meta.into_iter().collect::<BTreeMap<_, _>>(),
        evaluation: smeta,
        config: serde_json::to_value(cfg)?,
        normal_classes: cfg.normal_classes.clone(),
        n_train_normal: train_indices.len(),
        pooled: result.pooled,
        per_class: result.per_class.clone(),
        mean_class_auroc: result.mean_class_auroc,
        seconds: start.elapsed().as_secs_f64(),
    };
    let files = write_report(out_dir, &report, &result)?;
    Ok((report, files))
}

#[derive(Args)]
pub struct PredictArgs {
    /// An encoder checkpoint evaluated by `dia eval` (its `.csi.safetensors` statistics are
    /// read from beside it).
    #[arg(long)]
    checkpoint: PathBuf,
    /// An image, a folder of images, or a .npy array (N, 3, H, W) in [0, 1].
    input: PathBuf,
    /// Call images scoring below this value anomalous.
    #[arg(long, conflicts_with = "fpr")]
    threshold: Option<f64>,
    /// Choose the threshold so that this fraction of normal images is flagged (calibrated on
    /// leave-one-out scores of the normal training images).
    #[arg(long)]
    fpr: Option<f64>,
    /// Write the CSV here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let stats_path = statistics_path(&args.checkpoint);
    if !stats_path.exists() {
        bail!(
            "{}: no training statistics; run `dia eval` on this checkpoint first",
            stats_path.display()
        );
    }
    let (stats, calibration, meta) = load_statistics(&stats_path)?;
    let device = args.device.open()?;
    let (model, _) = load_model(&args.checkpoint, &device)?;
    let size = meta.image_size.unwrap_or(match model.config().arch {
        Arch::ResNet18 => 32,
        Arch::ResNet18ImageNet => 224,
    });
    let (x, sources) = crate::embed::load_input(&args.input, size)?;
    let (_, _, h, w) = x.dims4()?;
    if (h, w) != (size, size) {
        bail!(
            "{}: images are {h}x{w}, the model was evaluated at {size}x{size}",
            args.input.display()
        );
    }
    let data = TensorDataset::new(&x, sources.clone())?;
    let shift = match meta.shift.as_str() {
        "rotation" => dia_transforms::Shift::Rotation,
        "cutperm" => dia_transforms::Shift::CutPerm,
        s => bail!("{}: unknown shift {s:?}", stats_path.display()),
    };
    let idx: Vec<usize> = (0..sources.len()).collect();
    let feats = extract_features(
        &model,
        &data,
        &idx,
        shift,
        meta.k_shift,
        &meta.tta,
        &mut |_, _| {},
    )?;
    let scores = stats.score(&feats)?;
    let threshold = match (args.threshold, args.fpr) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(threshold_at_fpr(&calibration, f)?),
        (None, None) => None,
    };
    let mut csv = String::from(if threshold.is_some() {
        "source,score,prediction\n"
    } else {
        "source,score\n"
    });
    for (s, v) in sources.iter().zip(&scores) {
        match threshold {
            Some(t) => csv.push_str(&format!(
                "{s},{v},{}\n",
                if *v < t { "anomalous" } else { "normal" }
            )),
            None => csv.push_str(&format!("{s},{v}\n")),
        }
    }
    match &args.output {
        Some(p) => {
            dia_data::atomic::write_atomic(p, |f| std::io::Write::write_all(f, csv.as_bytes()))
                .with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {} ({} images)", p.display(), scores.len());
        }
        None => print!("{csv}"),
    }
    if let Some(t) = threshold {
        eprintln!("threshold {t:.6} (scores below it are anomalous)");
    }
    Ok(())
}
