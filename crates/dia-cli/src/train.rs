//! `dia train`: train a CSI or DIA encoder from a YAML config.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dia_contrastive::{train, RunOptions, StepInfo, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config (YAML).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Run directory (default: `runs/<config name>`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint, with its config.yaml.
    #[arg(long, conflicts_with_all = ["config", "run"])]
    resume: Option<PathBuf>,
    /// Stop after this many epochs (after their checkpoint), as if interrupted.
    #[arg(long, hide = true)]
    stop_after_epochs: Option<usize>,
}

pub fn read_config(path: &Path) -> Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: TrainConfig = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: invalid config", path.display()))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (cfg, run_dir, resume) = match (&args.resume, &args.config) {
        (Some(dir), _) => (read_config(&dir.join("config.yaml"))?, dir.clone(), true),
        (None, Some(path)) => {
            let cfg = read_config(path)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            let dir = args
                .run
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(stem));
            if dir.join("last.safetensors").exists() {
                bail!(
                    "{} already holds a run; continue it with --resume {0} or choose another --run",
                    dir.display()
                );
            }
            (cfg, dir, false)
        }
        (None, None) => bail!("give --config or --resume"),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut on_step = |s: &StepInfo| {
        if bar.length() == Some(0) {
            bar.set_length((s.iterations * cfg.epochs) as u64);
            bar.set_position(((s.epoch - 1) * s.iterations) as u64);
        }
        bar.set_prefix(format!("epoch {}/{}", s.epoch, cfg.epochs));
        bar.set_message(format!(
            "loss {:.4} (con {:.4}, shift {:.4}) lr {:.4} {:.0} img/s",
            s.losses.total(),
            s.losses.contrastive,
            s.losses.shift,
            s.lr,
            s.images_per_s
        ));
        bar.inc(1);
    };
    let opts = RunOptions {
        resume,
        stop_after_epochs: args.stop_after_epochs,
    };
    let summary = train(&cfg, &run_dir, opts, &mut on_step)?;
    bar.finish_and_clear();
    println!(
        "{}: {} of {} epochs done; mean loss {:.4} (first epoch of this run) -> {:.4} (last)",
        run_dir.display(),
        summary.epochs_done,
        cfg.epochs,
        summary.first_epoch_loss,
        summary.last_epoch_loss
    );
    Ok(())
}
