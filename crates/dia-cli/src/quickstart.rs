//! `dia quickstart`: the whole method on the embedded Fashion-MNIST sample, no download. It
//! trains a small DDPM, a CSI encoder, a DIA encoder (diffusion dissolver) and a DIA encoder with
//! the Gaussian-blur dissolver at CPU scale, evaluates each, and writes `runs/quickstart/` with
//! `report.md`, `roc.png` (every method on one plot) and `dissolve.png` (the DDPM's dissolving
//! at several t).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use dia_data::{load_batch, resolve_class, DataSource, Split};
use dia_eval::plot::{plot_roc, Curve};

use crate::experiment::{run_grid, slug, CellResult, ExperimentConfig};

#[derive(Args)]
pub struct QuickstartArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// The embedded sample (run from the repository root).
    #[arg(long, default_value = "datasets/fashion-mnist-sample")]
    data: PathBuf,
    /// The normal class.
    #[arg(long, default_value = "T-shirt/top")]
    class: String,
    /// Leave out the Gaussian-blur variant.
    #[arg(long)]
    no_gaussian: bool,
    /// A seconds-long run for tests (the numbers mean nothing).
    #[arg(long, hide = true)]
    tiny: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

fn experiment(args: &QuickstartArgs) -> Result<ExperimentConfig> {
    let tiny = args.tiny;
    let (width, epochs, dim, steps, samples) = if tiny {
        (4, 1, 8, 3, 1)
    } else {
        (16, 10, 16, 200, 2)
    };
    let yaml = format!(
        r#"
# dia quickstart: CPU scale on the embedded Fashion-MNIST sample (300 train / 100 test images
# per class). Scaled down from the paper: ResNet-18 width {width} (paper 64), {epochs} epochs (paper
# 1000), UNet dim {dim} (paper 64) trained {steps} steps (paper 312,500), {samples} test-time
# augmentations (paper 10).
train:
  data: {{format: idx, dir: {data}}}
  image_size: 32
  mode: csi
  shift_trans_type: rotation
  encoder: {{arch: resnet18, width: {width}}}
  epochs: {epochs}
  batch_size: 32
  max_iterations_per_epoch: {iters}
  seed: 0
  save_every: {epochs}
ddpm:
  unet: {{dim: {dim}, dim_mults: [1, 2, 4, 8]}}
  batch_size: 16
  steps: {steps}
  save_every: {steps}
  num_samples: {nsamp}
  sample_steps: 25
  seed: 0
methods: [{methods}]
normal_classes: [{class:?}]
seeds: [0]
eval: {{score: csi, ood_samples: {samples}}}
"#,
        data = args.data.display(),
        iters = if tiny { 2 } else { 201 },
        nsamp = if tiny { 0 } else { 16 },
        methods = if args.no_gaussian {
            "csi, dia-diffusion"
        } else {
            "csi, dia-diffusion, dia-gaussian"
        },
        class = args.class,
    );
    let cfg: ExperimentConfig = serde_yaml::from_str(&yaml).context("quickstart config")?;
    cfg.check()?;
    Ok(cfg)
}

/// Every method's ROC curve on one plot, from the cells' `scores.csv`.
fn combined_roc(results: &[CellResult], path: &Path, class: &str) -> Result<()> {
    let mut data = Vec::new();
    for r in results {
        let text = std::fs::read_to_string(r.run.join("eval/scores.csv"))?;
        let mut scores = Vec::new();
        let mut normal = Vec::new();
        for line in text.lines().skip(1) {
            let cells: Vec<&str> = line.rsplitn(3, ',').collect();
            // rsplitn: [score, normal, rest]
            scores.push(cells[0].parse::<f64>()?);
            normal.push(cells[1] == "true");
        }
        data.push((r.method.clone(), scores, normal));
    }
    let curves: Vec<Curve> = data
        .iter()
        .map(|(m, s, n)| Curve {
            label: m.clone(),
            scores: s,
            normal: n,
        })
        .collect();
    plot_roc(
        path,
        &format!("Fashion-MNIST sample, normal: {class}"),
        &curves,
    )?;
    Ok(())
}

/// A strip per image: the original, then the DDPM's dissolved image at each t.
fn dissolve_strip(
    ddpm_model: &Path,
    data: &Path,
    class: &str,
    path: &Path,
    device: &Device,
) -> Result<Vec<usize>> {
    let (ddpm, meta) = dia_diffusion::checkpoint::load_any(ddpm_model, device)?;
    let d = dia_diffusion::DiffusionDissolver::new(ddpm, meta.image_size, Default::default())?;
    let ds = DataSource::Idx {
        dir: data.to_path_buf(),
        classes: None,
    }
    .open(Split::Test, Some((32, 32)))?;
    let label = resolve_class(ds.classes(), class)?;
    let normal: Vec<usize> = (0..ds.len())
        .filter(|&i| ds.label(i) == label)
        .take(3)
        .collect();
    let other: Vec<usize> = (0..ds.len())
        .filter(|&i| ds.label(i) != label)
        .step_by(97)
        .take(3)
        .collect();
    let x = load_batch(ds.as_ref(), normal.into_iter().chain(other).collect())?.images;
    let ts = [30usize, 50, 100, 200, 400];
    let outs: Vec<Tensor> = ts
        .iter()
        .map(|&t| d.dissolve_at(&x, t))
        .collect::<dia_diffusion::Result<_>>()?;
    let columns: Vec<&Tensor> = std::iter::once(&x).chain(outs.iter()).collect();
    let img = dia_data::image_io::columns_grid(&columns, 96)?;
    dia_data::image_io::save_png(path, &img)?;
    Ok(ts.to_vec())
}

pub fn run(args: QuickstartArgs) -> Result<()> {
    if !args.data.join("classes.txt").is_file() {
        bail!(
            "{}: the embedded sample is not there; run dia quickstart from the repository root (or pass --data)",
            args.data.display()
        );
    }
    let start = Instant::now();
    let device = args.device.open()?;
    let cfg = experiment(&args)?;
    println!(
        "dia quickstart: DDPM + CSI + DIA on the embedded Fashion-MNIST sample, normal class {:?}; writing {}",
        args.class,
        args.out.display()
    );
    let results = run_grid(&cfg, &args.out, 1, &device)?;
    let roc = args.out.join("roc.png");
    combined_roc(&results, &roc, &args.class)?;
    let ddpm = args
        .out
        .join("ddpm")
        .join(slug(&args.class))
        .join("model.safetensors");
    let dissolve = args.out.join("dissolve.png");
    let ts = dissolve_strip(&ddpm, &args.data, &args.class, &dissolve, &device)?;
    let wall = start.elapsed().as_secs_f64();

    let mut md = format!(
        "# dia quickstart\n\nDIA (Dissolving Is Amplifying) against CSI on the embedded Fashion-MNIST sample \
         (`{}`: 300 training and 100 test images per class), one-class protocol: the normal class \
         is **{}**, the other nine classes are the anomalies. CPU scale, one seed; the numbers show \
         the pipeline works, not the paper's results (see docs/reproduction.md).\n\n\
         | method | AUROC | 95 % CI (bootstrap) | AUPR | FPR@95%TPR | training time |\n|---|---|---|---|---|---|\n",
        args.data.display(),
        args.class
    );
    for r in &results {
        md.push_str(&format!(
            "| {} | {:.4} | [{:.4}, {:.4}] | {:.4} | {:.4} | {:.0} s |\n",
            r.method,
            r.auroc,
            r.auroc_ci_low,
            r.auroc_ci_high,
            r.aupr,
            r.fpr_at_95_tpr,
            r.train_seconds
        ));
    }
    md.push_str(&format!(
        "\nWall time: {:.1} min (everything, this run; finished cells of an earlier run are reused).\n\n\
         ![ROC curves](roc.png)\n\n\
         Dissolving (each row: a test image, then the DDPM's one-step x̂₀ at t = {:?}; the first three rows \
         are the normal class):\n\n![dissolving](dissolve.png)\n\n## Configs\n\n```yaml\n{}```\n\n\
         Runs, checkpoints and per-method reports (`eval/report.json`, `scores.csv`, plots) are in \
         the method folders; the DDPM is in `ddpm/`.\n",
        wall / 60.0,
        ts,
        serde_yaml::to_string(&cfg)?
    ));
    let report = args.out.join("report.md");
    dia_data::atomic::write_atomic(&report, |f| std::io::Write::write_all(f, md.as_bytes()))?;
    for r in &results {
        println!(
            "{:<14} AUROC {:.4} [{:.4}, {:.4}]",
            r.method, r.auroc, r.auroc_ci_low, r.auroc_ci_high
        );
    }
    println!("report: {} ({:.1} min)", report.display(), wall / 60.0);
    Ok(())
}
