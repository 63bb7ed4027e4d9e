//! The quick start (`dia quickstart`): the whole method on the embedded Fashion-MNIST sample,
//! no download, designed to show what DIA does at a scale a 2-core CPU finishes in about ten
//! minutes (issue #16).
//!
//! The setting, fixed in advance (docs/reproduction.md says how it was chosen):
//! - normal class **Shirt**, the most fine-grained class of Fashion-MNIST: its nearest
//!   anomalies (T-shirt/top, Pullover, Coat) differ from it in detail;
//! - one DDPM of the reference's shape family (`Unet(dim, dim_mults=(1, 2, 4))`, Adam 8e-5,
//!   spec §2.2), trained on the class until its smoothed loss plateaus (at most `DDPM_STEPS`),
//!   with its loss curve and dissolving strength in the report;
//! - CSI and DIA (diffusion dissolver; optionally Gaussian blur) at seeds 0, 1 and 2;
//! - `report.md`: AUROC per method and seed, mean ± std, DIA − CSI paired over the seeds with its
//!   t-interval, the DDPM's numbers, `roc.png` (seed 0) and `dissolve.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use dia_data::{load_batch, DataSource, Split};
use dia_eval::plot::{plot_roc, Curve};

use crate::ddpm_report::strength_table;
use crate::error::{Error, Result};
use crate::experiment::{
    ddpm_dir, ddpm_summaries, markdown_table, paired_table, run_grid, CellResult, ExperimentConfig,
};
use crate::progress::Tasks;

/// The seeds of the quick start, fixed before any run.
pub const QUICKSTART_SEEDS: [u64; 3] = [0, 1, 2];

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
    /// Train the DDPM here (`configs/quickstart-ddpm.yaml`'s recipe, about 20 min on a 2-core
    /// CPU) instead of using the one shipped with the sample, which that recipe trained.
    pub train_ddpm: bool,
}

/// The shipped DDPM of the quick start: a `dia train-ddpm` run directory (weights, config,
/// metrics, strength, samples) inside the embedded sample, trained by
/// `configs/quickstart-ddpm.yaml`.
pub const SHIPPED_DDPM: &str = "ddpm-shirt";

/// The SHA-256 of the shipped DDPM's `model.safetensors`; a file that differs is refused.
pub const SHIPPED_DDPM_SHA256: &str =
    "ce5e374701fd9898edb07e3ec59f685e334a1f3850615eae6fb17d3a882a0c9a";

/// The DDPM section of the quick start (also `configs/quickstart-ddpm.yaml`, which a test keeps
/// equal to it), at full or tiny scale.
fn ddpm_section(tiny: bool) -> String {
    if tiny {
        return "  unet: {dim: 8, dim_mults: [1, 2]}\n  batch_size: 8\n  steps: 4\n  save_every: 2\n  \
                num_samples: 0\n  seed: 0\n  plateau: {window: 2, threshold: 0.02, min_steps: 2}\n"
            .into();
    }
    "  image_size: 32\n  unet: {dim: 16, dim_mults: [1, 2, 4]}\n  batch_size: 32\n  steps: 600\n  \
     save_every: 100\n  num_samples: 16\n  sample_steps: 25\n  seed: 0\n  \
     plateau: {window: 100, threshold: 0.02, min_steps: 300}\n"
        .into()
}

/// What the quick start produced.
#[derive(Clone, Debug)]
pub struct QuickstartOutcome {
    /// One result per method and seed.
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
        // (encoder width, epochs, TTA samples)
        let (width, epochs, samples) = if tiny { (4, 1, 1) } else { (16, 6, 1) };
        let seeds: Vec<String> = if tiny {
            vec!["0".into(), "1".into()]
        } else {
            QUICKSTART_SEEDS.iter().map(u64::to_string).collect()
        };
        let yaml = format!(
            r#"
# dia quickstart: CPU scale on the embedded Fashion-MNIST sample (300 train / 100 test images
# per class). Scaled down from the paper: ResNet-18 width {width} (paper 64), {epochs} epochs (paper
# 1000), {samples} test-time augmentation (paper 10); the DDPM: configs/quickstart-ddpm.yaml.
train:
  data: {{format: idx, dir: {data}}}
  image_size: 32
  mode: csi
  shift_trans_type: rotation
  encoder: {{arch: resnet18, width: {width}}}
  epochs: {epochs}
  batch_size: 32
  warmup_epochs: 1
  max_iterations_per_epoch: {iters}
  seed: 0
  save_every: {epochs}
ddpm:
{ddpm}methods: [{methods}]
normal_classes: [{class:?}]
seeds: [{seeds}]
eval: {{score: csi, ood_samples: {samples}}}
"#,
            data = self.data.display(),
            iters = if tiny { 2 } else { 201 },
            ddpm = ddpm_section(tiny),
            methods = if !self.gaussian {
                "csi, dia-diffusion"
            } else {
                "csi, dia-diffusion, dia-gaussian"
            },
            class = self.class,
            seeds = seeds.join(", "),
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
        let ddpm_run = ddpm_dir(out, &self.class);
        let shipped = !self.tiny && !self.train_ddpm;
        if shipped {
            self.install_shipped_ddpm(&ddpm_run)?;
        }
        let results = run_grid(&cfg, out, 1, device, tasks)?;
        let first_seed = cfg.seeds[0];
        let seed0: Vec<CellResult> = results
            .iter()
            .filter(|r| r.seed == first_seed)
            .cloned()
            .collect();
        combined_roc(&seed0, &out.join("roc.png"), &self.class)?;
        let ts = self.dissolve_strip(
            &ddpm_run.join("model.safetensors"),
            &out.join("dissolve.png"),
            device,
        )?;
        let ddpm = ddpm_summaries(&cfg, out)?
            .pop()
            .map(|(_, s)| s)
            .ok_or_else(|| Error::Config("the quickstart's DDPM did not finish".into()))?;
        let wall = start.elapsed().as_secs_f64();
        let rel = |p: &Path| p.strip_prefix(out).unwrap_or(p).display().to_string();
        let mut per_seed = String::from(
            "| method | seed | AUROC | 95 % CI (bootstrap over test images) | training time |\n|---|---|---|---|---|\n",
        );
        for r in &results {
            per_seed.push_str(&format!(
                "| {} | {} | {:.4} | [{:.4}, {:.4}] | {:.0} s |\n",
                r.method, r.seed, r.auroc, r.auroc_ci_low, r.auroc_ci_high, r.train_seconds
            ));
        }
        let md = format!(
            "# dia quickstart\n\nDIA (Dissolving Is Amplifying) against CSI on the embedded Fashion-MNIST sample \
             (`{data}`: 300 training and 100 test images per class), one-class protocol: the normal class \
             is **{class}**, the other nine classes are the anomalies. Seeds {seeds:?}, fixed in advance; \
             CPU scale, far below the paper's (see the config below and docs/reproduction.md).\n\n\
             ## AUROC\n\nMean ± std over the seeds (last epoch):\n\n{table}\n\
             ## DIA − CSI, paired\n\nSame class, same seed; 95 % Student t-interval over the {n} seeds. \
             An interval that contains 0 means that, at this scale, the gain is not shown.\n\n{paired}\n\
             {verdict}\n\n\
             Every cell:\n\n{per_seed}\n![ROC curves, seed {first_seed}](roc.png)\n\n\
             ## The DDPM (the dissolver)\n\n{origin}\n\n{steps} steps{stop}, smoothed loss {loss:.4} \
             (curve: `{loss_png}`, details: `{ddpm_md}`). Dissolving strength on 16 training images \
             of the class:\n\n{strength}\n![loss]({loss_png})\n\n\
             Dissolving (each row: a test image, then the DDPM's one-step x̂₀ at t = {ts:?}; the first three rows \
             are the normal class):\n\n![dissolving](dissolve.png)\n\n\
             Wall time: {wall:.1} min (everything, this run; finished cells of an earlier run are reused).\n\n\
             ## Config\n\n```yaml\n{yaml}```\n\n\
             Runs, checkpoints and per-cell reports (`eval/report.json`, `scores.csv`, plots) are in \
             the method folders; the DDPM is in `ddpm/`.\n",
            data = self.data.display(),
            class = self.class,
            seeds = cfg.seeds,
            table = markdown_table(&results),
            n = cfg.seeds.len(),
            paired = paired_table(&results, "csi"),
            verdict = verdict(&results),
            origin = if shipped {
                format!(
                    "The DDPM shipped with the sample (`{}/{SHIPPED_DDPM}`, SHA-256 of its weights \
                     `{SHIPPED_DDPM_SHA256}`, checked), trained by `dia train-ddpm --config \
                     configs/quickstart-ddpm.yaml` (docs/reproduction.md gives its time); \
                     `dia quickstart --train-ddpm` trains it here instead.",
                    self.data.display()
                )
            } else {
                "Trained by this run (`--train-ddpm`), with the recipe of \
                 `configs/quickstart-ddpm.yaml`."
                    .to_string()
            },
            steps = ddpm.steps,
            stop = if ddpm.plateaued { " (stopped on a plateau of the loss)" } else { " (the cap; no plateau)" },
            loss = ddpm.smoothed_loss,
            loss_png = rel(&ddpm.loss_plot),
            ddpm_md = rel(&ddpm_run.join("report.md")),
            strength = strength_table(&ddpm),
            wall = wall / 60.0,
            yaml = serde_yaml::to_string(&cfg).map_err(|e| Error::Config(e.to_string()))?,
        );
        let report = out.join("report.md");
        dia_io::atomic::write_atomic(&report, |f| std::io::Write::write_all(f, md.as_bytes()))?;
        Ok(QuickstartOutcome {
            results,
            report,
            seconds: wall,
        })
    }

    /// Copies the shipped DDPM run into `dir` (unless a DDPM is there already), after checking
    /// its weights' checksum.
    fn install_shipped_ddpm(&self, dir: &Path) -> Result<()> {
        if dir.join("model.safetensors").is_file() {
            return Ok(());
        }
        if dir.exists() {
            return Err(Error::Config(format!(
                "{}: holds an unfinished DDPM run (from --train-ddpm?); finish it with \
                 dia quickstart --train-ddpm, or remove the folder to use the shipped DDPM",
                dir.display()
            )));
        }
        let src = self.data.join(SHIPPED_DDPM);
        let model = src.join("model.safetensors");
        let sum = dia_io::file_checksum(&model)?;
        if sum != SHIPPED_DDPM_SHA256 {
            return Err(Error::Config(format!(
                "{}: SHA-256 {sum}, expected {SHIPPED_DDPM_SHA256}: not the shipped DDPM \
                 (restore it with git, or run dia quickstart --train-ddpm)",
                model.display()
            )));
        }
        let tmp = dir.with_extension("part");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(crate::error::io_err(&tmp))?;
        }
        copy_dir(&src, &tmp)?;
        // The folder appears whole or not at all.
        std::fs::rename(&tmp, dir).map_err(crate::error::io_err(dir))?;
        Ok(())
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

/// The quick start's conclusion about DIA − CSI, in words, from the paired differences.
fn verdict(results: &[CellResult]) -> String {
    let diffs = crate::experiment::paired_differences(results, "csi");
    let mut lines = Vec::new();
    for d in diffs.iter().filter(|d| d.class.is_none()) {
        let wins = results
            .iter()
            .filter(|r| r.method == d.method)
            .filter(|r| {
                results.iter().any(|b| {
                    b.method == "csi" && b.seed == r.seed && b.class == r.class && r.auroc > b.auroc
                })
            })
            .count();
        let shown = d.n > 1 && (d.ci95.0 > 0.0 || d.ci95.1 < 0.0);
        lines.push(format!(
            "**{}**: {:+.4} on average, higher than CSI on {wins} of {} seeds; {}.",
            d.method,
            d.mean,
            d.n,
            if !shown {
                "the interval contains 0, so at this scale and with these seeds the difference is \
                 **not shown**"
                    .to_string()
            } else if d.mean > 0.0 {
                "the interval excludes 0: a gain over CSI at this scale".to_string()
            } else {
                "the interval excludes 0: worse than CSI at this scale".to_string()
            }
        ));
    }
    lines.join("\n")
}

/// Copies the files of `src` (and of its subfolders) into the new folder `dst`.
fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(crate::error::io_err(dst))?;
    for e in std::fs::read_dir(src).map_err(crate::error::io_err(src))? {
        let e = e.map_err(crate::error::io_err(src))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        if from.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(crate::error::io_err(&from))?;
        }
    }
    Ok(())
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
