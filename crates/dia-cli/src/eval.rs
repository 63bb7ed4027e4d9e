//! `dia eval` and `dia predict`: CSI scores, metrics and reports (spec §6), through
//! `dia_pipeline::evaluate_checkpoint` and `dia-eval`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dia_contrastive::TrainConfig;
use dia_eval::report::table;
use dia_eval::{statistics_path, ScoreKind, TtaConfig};
use dia_pipeline::{evaluate_checkpoint, EvalOptions, Scorer};

use crate::progress::Bar;

#[derive(Args)]
pub(crate) struct EvalArgs {
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

pub(crate) fn eval(args: EvalArgs) -> Result<()> {
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
    let cfg = dia_pipeline::run::read_config(&cfg_path, TrainConfig::validate)?;
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
    let bar = Bar::new("{prefix:>15} [{bar:30}] {pos}/{len} ({eta})");
    let opts = EvalOptions {
        score: args.score,
        tta,
    };
    let (report, files) = evaluate_checkpoint(&cfg, &ckpt, &out_dir, opts, &device, &bar)?;
    bar.finish();
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

#[derive(Args)]
pub(crate) struct PredictArgs {
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

pub(crate) fn predict(args: PredictArgs) -> Result<()> {
    let device = args.device.open()?;
    let scorer = Scorer::load(&args.checkpoint, &device)?;
    let (x, sources) = dia_data::load_images(&args.input, scorer.image_size())?;
    let scores = scorer
        .score(&x, &sources)
        .with_context(|| args.input.display().to_string())?;
    let threshold = match (args.threshold, args.fpr) {
        (Some(t), _) if !t.is_finite() => bail!("--threshold {t}: must be a finite number"),
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(scorer.threshold_at_fpr(f)?),
        (None, None) => None,
    };
    let header: &[&str] = if threshold.is_some() {
        &["source", "score", "prediction"]
    } else {
        &["source", "score"]
    };
    let rows = sources.iter().zip(&scores).map(|(s, v)| {
        let mut row = vec![s.clone(), v.to_string()];
        if let Some(t) = threshold {
            row.push(if *v < t { "anomalous" } else { "normal" }.to_string());
        }
        row
    });
    let csv = dia_io::csv::to_csv(header, rows);
    match &args.output {
        Some(p) => {
            dia_io::atomic::write_atomic(p, |f| std::io::Write::write_all(f, csv.as_bytes()))
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
