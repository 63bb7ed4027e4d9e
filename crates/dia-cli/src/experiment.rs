//! `dia experiment --config E.yaml`: a grid of methods × normal classes × seeds, with one DDPM
//! per normal class shared by the diffusion cells, resumable (a finished cell is not re-run, an
//! interrupted one continues from its checkpoint), and one results table (CSV + markdown, mean
//! ± std over seeds). `--jobs N` runs N cells at once.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use dia_contrastive::{DiffusionSpec, Mode, TrainConfig};
use dia_diffusion::DdpmConfig;
use dia_eval::{ScoreKind, TtaConfig};
use dia_transforms::{DissolveKind, ShiftKind};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// A method of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// CSI (no dissolving).
    Csi,
    /// DIA with the diffusion dissolver (the paper's method).
    DiaDiffusion,
    /// DIA with the Gaussian-blur dissolver.
    DiaGaussian,
    /// DIA with the median-blur dissolver.
    DiaMedian,
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Csi => "csi",
            Method::DiaDiffusion => "dia-diffusion",
            Method::DiaGaussian => "dia-gaussian",
            Method::DiaMedian => "dia-median",
        }
    }
}

fn d_seeds() -> Vec<u64> {
    vec![0]
}
fn d_samples() -> usize {
    10
}

/// Evaluation settings of every cell.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// `csi` or `simclr`.
    #[serde(default = "d_score")]
    pub score: ScoreKind,
    /// TTA copies per image and shift.
    #[serde(default = "d_samples")]
    pub ood_samples: usize,
}

fn d_score() -> ScoreKind {
    ScoreKind::Csi
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            score: ScoreKind::Csi,
            ood_samples: 10,
        }
    }
}

/// An experiment: the base training config, the DDPM config, and the grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The base encoder config; `mode`, `shift_trans_type`'s dissolve part, `normal_classes`,
    /// `seed` and `diffusion` are set per cell.
    pub train: TrainConfig,
    /// The DDPM config of the diffusion cells (its `data` defaults to the encoder's; its
    /// `normal_classes` and `image_size` are set per class).
    #[serde(default)]
    pub ddpm: Option<serde_yaml::Value>,
    /// Methods.
    pub methods: Vec<Method>,
    /// Normal classes, one grid row each.
    pub normal_classes: Vec<String>,
    /// Seeds.
    #[serde(default = "d_seeds")]
    pub seeds: Vec<u64>,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalSection,
}

#[derive(Args)]
pub struct ExperimentArgs {
    /// The experiment config (YAML).
    #[arg(long)]
    config: PathBuf,
    /// Output folder (default: `runs/<config name>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cells run at once (one per GPU when several exist).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only check the config and exit.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// The result of one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    pub method: String,
    pub class: String,
    pub seed: u64,
    pub auroc: f64,
    pub auroc_ci_low: f64,
    pub auroc_ci_high: f64,
    pub aupr: f64,
    pub fpr_at_95_tpr: f64,
    pub train_seconds: f64,
    pub run: PathBuf,
}

pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl ExperimentConfig {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Self = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: invalid experiment config", path.display()))?;
        cfg.check()
            .with_context(|| format!("{}: invalid experiment config", path.display()))?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<()> {
        if self.methods.is_empty() || self.normal_classes.is_empty() || self.seeds.is_empty() {
            bail!("methods, normal_classes and seeds must not be empty");
        }
        if self.methods.contains(&Method::DiaDiffusion) {
            self.ddpm_config("check")?;
        }
        for m in &self.methods {
            self.cell_config(*m, "x", 0, None)?
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", m.name()))?;
        }
        Ok(())
    }

    /// The DDPM config for normal class `class`.
    pub fn ddpm_config(&self, class: &str) -> Result<DdpmConfig> {
        let Some(v) = &self.ddpm else {
            bail!("method dia-diffusion needs a `ddpm` section");
        };
        let mut v = v.clone();
        let map = v
            .as_mapping_mut()
            .context("the ddpm section must be a mapping")?;
        if !map.contains_key("data") {
            map.insert("data".into(), serde_yaml::to_value(&self.train.data)?);
        }
        map.insert("normal_classes".into(), serde_yaml::to_value(vec![class])?);
        let mut cfg: DdpmConfig = serde_yaml::from_value(v).context("ddpm section")?;
        cfg.image_size = self.train.image_size.unwrap_or(cfg.image_size);
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("ddpm section: {e}"))?;
        Ok(cfg)
    }

    /// The encoder config of one cell.
    pub fn cell_config(
        &self,
        method: Method,
        class: &str,
        seed: u64,
        ddpm: Option<&Path>,
    ) -> Result<TrainConfig> {
        let mut c = self.train.clone();
        let shift = c.shift_trans_type.shift;
        let (mode, dissolve) = match method {
            Method::Csi => (Mode::Csi, DissolveKind::None),
            Method::DiaDiffusion => (Mode::Dia, DissolveKind::Diffusion),
            Method::DiaGaussian => (Mode::Dia, DissolveKind::Gaussian),
            Method::DiaMedian => (Mode::Dia, DissolveKind::Median),
        };
        c.mode = mode;
        c.shift_trans_type = ShiftKind { dissolve, shift };
        c.normal_classes = vec![class.to_string()];
        c.seed = seed;
        c.diffusion = match method {
            Method::DiaDiffusion => Some(DiffusionSpec {
                checkpoint: ddpm
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| "ddpm.safetensors".into()),
                dissolver: c.diffusion.map(|d| d.dissolver).unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(c)
    }
}

fn style(bar: &ProgressBar, prefix: String) {
    bar.set_style(
        ProgressStyle::with_template("{prefix:<36} [{bar:25}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
}

/// Trains (or resumes, or skips) the DDPM of `class`; returns its `model.safetensors`.
pub fn run_ddpm(
    cfg: &DdpmConfig,
    dir: &Path,
    device: &Device,
    bar: &ProgressBar,
) -> Result<PathBuf> {
    let model = dir.join("model.safetensors");
    if model.is_file() {
        // Only the metadata is needed: read on the host, nothing is computed.
        let (_, meta) = dia_diffusion::checkpoint::read_tensors(&model, &candle_core::Device::Cpu)?;
        if meta.is_some_and(|m| m.step >= cfg.steps) {
            bar.finish_with_message("done before");
            return Ok(model);
        }
    }
    let resume = dir.join("checkpoint.safetensors").is_file();
    bar.set_length(cfg.steps as u64);
    let mut on_step = |s: &dia_diffusion::train::StepInfo| {
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.4}", s.loss));
    };
    dia_diffusion::train::train(
        cfg,
        dir,
        device,
        dia_diffusion::train::RunOptions {
            resume,
            stop_after_steps: None,
        },
        &mut on_step,
    )?;
    bar.finish_with_message("trained");
    Ok(model)
}

/// Trains (or resumes) and evaluates one cell; a cell with a report is read back.
pub fn run_cell(
    cfg: &TrainConfig,
    method: Method,
    dir: &Path,
    eval: &EvalSection,
    device: &Device,
    bar: &ProgressBar,
) -> Result<CellResult> {
    let report_path = dir.join("eval").join("report.json");
    let timing = dir.join("train_seconds.txt");
    if !report_path.is_file() {
        let done = dia_contrastive::epochs_done(dir).unwrap_or(0);
        if done < cfg.epochs {
            let t = Instant::now();
            let mut on_step = |s: &dia_contrastive::StepInfo| {
                if bar.length() == Some(0) {
                    bar.set_length((s.iterations * cfg.epochs) as u64);
                    bar.set_position(((s.epoch - 1) * s.iterations) as u64);
                }
                bar.set_message(format!("epoch {} loss {:.3}", s.epoch, s.losses.total()));
                bar.inc(1);
            };
            dia_contrastive::train(
                cfg,
                dir,
                device,
                dia_contrastive::RunOptions {
                    resume: done > 0,
                    stop_after_epochs: None,
                },
                &mut on_step,
            )?;
            let before: f64 = std::fs::read_to_string(&timing)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0.0);
            let text = format!("{}\n", before + t.elapsed().as_secs_f64());
            dia_data::atomic::write_atomic(&timing, |f| {
                std::io::Write::write_all(f, text.as_bytes())
            })?;
        }
        bar.set_message("evaluating");
        let tta = TtaConfig {
            ood_samples: eval.ood_samples,
            seed: cfg.seed,
            ..TtaConfig::default()
        };
        crate::eval::evaluate_checkpoint(
            cfg,
            &dir.join("last.safetensors"),
            &dir.join("eval"),
            eval.score,
            tta,
            device,
            bar,
        )?;
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    let p = &report["pooled"];
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    bar.finish_with_message(format!("AUROC {:.4}", f(&p["auroc"])));
    Ok(CellResult {
        method: method.name().to_string(),
        class: cfg.normal_classes.join("+"),
        seed: cfg.seed,
        auroc: f(&p["auroc"]),
        auroc_ci_low: f(&p["auroc_ci95"][0]),
        auroc_ci_high: f(&p["auroc_ci95"][1]),
        aupr: f(&p["aupr"]),
        fpr_at_95_tpr: f(&p["fpr_at_95_tpr"]),
        train_seconds: std::fs::read_to_string(&timing)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(f64::NAN),
        run: dir.to_path_buf(),
    })
}

/// Runs the whole grid in `out`; returns the cell results in grid order.
pub fn run_grid(
    cfg: &ExperimentConfig,
    out: &Path,
    jobs: usize,
    device: &Device,
) -> Result<Vec<CellResult>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let yaml = serde_yaml::to_string(cfg)?;
    dia_data::atomic::write_atomic(&out.join("experiment.yaml"), |f| {
        std::io::Write::write_all(f, yaml.as_bytes())
    })?;
    let multi = MultiProgress::new();
    // Phase 1: one DDPM per normal class, for the diffusion cells.
    let mut ddpms = std::collections::HashMap::new();
    if cfg.methods.contains(&Method::DiaDiffusion) {
        let results = parallel(jobs, &cfg.normal_classes, |class| {
            let bar = multi.add(ProgressBar::new(0));
            style(&bar, format!("ddpm {class}"));
            run_ddpm(
                &cfg.ddpm_config(class)?,
                &out.join("ddpm").join(slug(class)),
                device,
                &bar,
            )
        });
        for (class, r) in cfg.normal_classes.iter().zip(results) {
            ddpms.insert(class.clone(), r?);
        }
    }
    // Phase 2: the cells.
    let mut cells = Vec::new();
    for class in &cfg.normal_classes {
        for &method in &cfg.methods {
            for &seed in &cfg.seeds {
                cells.push((method, class.clone(), seed));
            }
        }
    }
    let results = parallel(jobs, &cells, |(method, class, seed)| {
        let tc = cfg.cell_config(
            *method,
            class,
            *seed,
            ddpms.get(class).map(PathBuf::as_path),
        )?;
        let dir = out
            .join(method.name())
            .join(slug(class))
            .join(format!("seed-{seed}"));
        let bar = multi.add(ProgressBar::new(0));
        style(&bar, format!("{} {class} seed {seed}", method.name()));
        run_cell(&tc, *method, &dir, &cfg.eval, device, &bar)
            .with_context(|| format!("{} {class} seed {seed}", method.name()))
    });
    let results: Vec<CellResult> = results.into_iter().collect::<Result<_>>()?;
    write_tables(out, &results)?;
    Ok(results)
}

/// Runs `f` on every item with at most `jobs` at once; results in item order.
fn parallel<T: Sync, R: Send>(jobs: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("not poisoned");
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *out[i].lock().expect("not poisoned") = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .expect("not poisoned")
                .expect("every item ran")
        })
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// The markdown table: one row per method, one column per class, mean ± std of the AUROC over
/// seeds, and the mean over classes.
pub fn markdown_table(results: &[CellResult]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    let mut classes: Vec<&str> = Vec::new();
    for r in results {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
        if !classes.contains(&r.class.as_str()) {
            classes.push(&r.class);
        }
    }
    let seeds = results
        .iter()
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut t = format!(
        "| method | {} | mean |\n|---|{}---|\n",
        classes.join(" | "),
        "---|".repeat(classes.len())
    );
    for m in &methods {
        let mut row = format!("| {m} |");
        let mut means = Vec::new();
        for c in &classes {
            let v: Vec<f64> = results
                .iter()
                .filter(|r| r.method == *m && r.class == *c)
                .map(|r| r.auroc)
                .collect();
            if v.is_empty() {
                row.push_str(" – |");
                continue;
            }
            let (mu, sd) = mean_std(&v);
            means.push(mu);
            if seeds > 1 {
                row.push_str(&format!(" {mu:.4} ± {sd:.4} |"));
            } else {
                let r = results
                    .iter()
                    .find(|r| r.method == *m && r.class == *c)
                    .expect("present");
                row.push_str(&format!(
                    " {mu:.4} [{:.3}, {:.3}] |",
                    r.auroc_ci_low, r.auroc_ci_high
                ));
            }
        }
        row.push_str(&format!(" {:.4} |\n", mean_std(&means).0));
        t.push_str(&row);
    }
    t
}

fn write_tables(out: &Path, results: &[CellResult]) -> Result<()> {
    let mut csv = String::from(
        "method,class,seed,auroc,auroc_ci_low,auroc_ci_high,aupr,fpr_at_95_tpr,train_seconds,run\n",
    );
    for r in results {
        csv.push_str(&format!(
            "{},\"{}\",{},{},{},{},{},{},{},{}\n",
            r.method,
            r.class,
            r.seed,
            r.auroc,
            r.auroc_ci_low,
            r.auroc_ci_high,
            r.aupr,
            r.fpr_at_95_tpr,
            r.train_seconds,
            r.run.display()
        ));
    }
    dia_data::atomic::write_atomic(&out.join("results.csv"), |f| {
        std::io::Write::write_all(f, csv.as_bytes())
    })?;
    let seeds = results
        .iter()
        .map(|r| r.seed)
        .collect::<std::collections::BTreeSet<_>>();
    let md = format!(
        "# Results\n\nAUROC (normal = positive), one-class protocol; {}.\n\n{}",
        if seeds.len() > 1 {
            format!("mean ± std over seeds {seeds:?}")
        } else {
            format!(
                "seed {:?}, bootstrap 95 % interval in brackets",
                seeds.iter().next().expect("one seed")
            )
        },
        markdown_table(results)
    );
    dia_data::atomic::write_atomic(&out.join("results.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    Ok(())
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    let cfg = ExperimentConfig::read(&args.config)?;
    if args.check {
        println!(
            "{}: {} cells ({} methods x {} classes x {} seeds)",
            args.config.display(),
            cfg.methods.len() * cfg.normal_classes.len() * cfg.seeds.len(),
            cfg.methods.len(),
            cfg.normal_classes.len(),
            cfg.seeds.len()
        );
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(
            args.config
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    });
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let device = args.device.open()?;
    let results = run_grid(&cfg, &out, args.jobs, &device)?;
    print!("{}", markdown_table(&results));
    println!(
        "wrote {} and {}",
        out.join("results.csv").display(),
        out.join("results.md").display()
    );
    Ok(())
}
