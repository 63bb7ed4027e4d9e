//! The quick start (`dia quickstart`): the whole method on the embedded Fashion-MNIST sample,
//! no download. It trains a small DDPM, a CSI encoder, a DIA encoder (diffusion dissolver) and
//! optionally a DIA encoder with the Gaussian-blur dissolver at CPU scale, evaluates each, and
//! writes `report.md`, `roc.png` (every method on one plot) and `dissolve.png` (the DDPM's
//! dissolving at several t).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use dia_data::{load_batch, DataSource, Split};
use dia_eval::plot::{plot_roc, Curve};

use crate::error::{Error, Result};
use crate::experiment::{run_grid, slug, CellResult, ExperimentConfig};
use crate::progress::Tasks;

/// What the quick start runs.
#[derive(Clone, Debug)]
pub struct Quickstart {
    /// The embedded sample (IDX files and `classes.txt`).
    pub data: PathBuf,
    /// The normal class.
    pub class: String,
    /// Include the Gaussian-blur variant of DIA.
    pub gaussian: bool,
    /// A seconds-long run for tests (the numbers mean nothing).
    pub tiny: bool,
}

/// What the quick start produced.
#[derive(Clone, Debug)]
pub struct QuickstartOutcome {
    /// One result per method.
    pub results: Vec<CellResult>,
    /// `report.md`.
    pub report: PathBuf,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
}

impl Quickstart {
    /// The experiment grid the quick start runs.
    pub fn experiment(&self) -> Result<ExperimentConfig> {
        let tiny = self.tiny;
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
            data = self.data.display(),
            iters = if tiny { 2 } else { 201 },
            nsamp = if tiny { 0 } else { 16 },
            methods = if !self.gaussian {
                "csi, dia-diffusion"
            } else {
                "csi, dia-diffusion, dia-gaussian"
            },
            class = self.class,
        );
        let cfg: ExperimentConfig = serde_yaml::from_str(&yaml).map_err(|source| Error::Yaml {
            path: "quickstart config".into(),
            source,
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Runs everything into `out` on `device`.
    pub fn run(&self, out: &Path, device: &Device, tasks: &dyn Tasks) -> Result<QuickstartOutcome> {
        if !self.data.join("classes.txt").is_file() {
            return Err(Error::Config(format!(
                "{}: the embedded sample is not there; run dia quickstart from the repository root (or pass --data)",
                self.data.display()
            )));
        }
        let start = Instant::now();
        let cfg = self.experiment()?;
        let results = run_grid(&cfg, out, 1, device, tasks)?;
        combined_roc(&results, &out.join("roc.png"), &self.class)?;
        let ddpm = out
            .join("ddpm")
            .join(slug(&self.class))
            .join("model.safetensors");
        let ts = self.dissolve_strip(&ddpm, &out.join("dissolve.png"), device)?;
        let wall = start.elapsed().as_secs_f64();
        let mut md = format!(
            "# dia quickstart\n\nDIA (Dissolving Is Amplifying) against CSI on the embedded Fashion-MNIST sample \
             (`{}`: 300 training and 100 test images per class), one-class protocol: the normal class \
             is **{}**, the other nine classes are the anomalies. CPU scale, one seed; the numbers show \
             the pipeline works, not the paper's results (see docs/reproduction.md).\n\n\
             | method | AUROC | 95 % CI (bootstrap) | AUPR | FPR@95%TPR | training time |\n|---|---|---|---|---|---|\n",
            self.data.display(),
            self.class
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
            serde_yaml::to_string(&cfg).map_err(|e| Error::Config(e.to_string()))?
        ));
        let report = out.join("report.md");
        dia_io::atomic::write_atomic(&report, |f| std::io::Write::write_all(f, md.as_bytes()))?;
        Ok(QuickstartOutcome {
            results,
            report,
            seconds: wall,
        })
    }

    /// A strip per image: the original, then the DDPM's dissolved image at each t.
    fn dissolve_strip(
        &self,
        ddpm_model: &Path,
        path: &Path,
        device: &Device,
    ) -> Result<Vec<usize>> {
        let (ddpm, meta) = dia_diffusion::checkpoint::load_any(ddpm_model, device)?;
        let d = dia_diffusion::DiffusionDissolver::new(ddpm, meta.image_size, Default::default())?;
        let ds = DataSource::Idx {
            dir: self.data.clone(),
            classes: None,
        }
        .open(Split::Test, Some((32, 32)))?;
        let all_normal = dia_data::normal_indices(ds.as_ref(), std::slice::from_ref(&self.class))?;
        let normal: Vec<usize> = all_normal.iter().copied().take(3).collect();
        let other: Vec<usize> = (0..ds.len())
            .filter(|i| all_normal.binary_search(i).is_err())
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
}

/// Every method's ROC curve on one plot, from the cells' typed `scores.csv`.
fn combined_roc(results: &[CellResult], path: &Path, class: &str) -> Result<()> {
    let mut data = Vec::new();
    for r in results {
        let scored = dia_eval::report::read_scores(&r.run.join("eval/scores.csv"))?;
        let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
        let normal: Vec<bool> = scored.iter().map(|s| s.normal).collect();
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
