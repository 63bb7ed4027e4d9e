//! `dia train`: train a CSI or DIA encoder from a YAML config.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dia_contrastive::{train, RunOptions, StepInfo, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub(crate) struct TrainArgs {
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
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// Reads a YAML config of type `T` and checks it with `validate`.
pub(crate) fn read_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: T = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: invalid config", path.display()))?;
    validate(&cfg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

pub(crate) fn read_config(path: &Path) -> Result<TrainConfig> {
    read_yaml(path, TrainConfig::validate)
}

/// The config, run directory and whether to resume, from `--config`/`--run`/`--resume`: a
/// new run goes to `--run` or `runs/<config name>`, and a directory that already holds a run
/// (its `marker` file exists) is refused.
pub(crate) fn run_setup<T>(
    config: Option<&Path>,
    run: Option<&Path>,
    resume: Option<&Path>,
    marker: &str,
    read: impl Fn(&Path) -> Result<T>,
) -> Result<(T, PathBuf, bool)> {
    match (resume, config) {
        (Some(dir), _) => Ok((read(&dir.join("config.yaml"))?, dir.to_path_buf(), true)),
        (None, Some(path)) => {
            let cfg = read(path)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            let dir = run
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("runs").join(stem));
            if dir.join(marker).exists() {
                bail!(
                    "{} already holds a run; continue it with --resume {0} or choose another --run",
                    dir.display()
                );
            }
            Ok((cfg, dir, false))
        }
        (None, None) => bail!("give --config or --resume"),
    }
}

pub(crate) fn run(args: TrainArgs) -> Result<()> {
    let (cfg, run_dir, resume) = run_setup(
        args.config.as_deref(),
        args.run.as_deref(),
        args.resume.as_deref(),
        "last.safetensors",
        read_config,
    )?;
    let device = args.device.open()?;
    let free_at_start = crate::device::memory(&device).map(|m| m.0);
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
    let dissolver = dia_pipeline::dissolver(&cfg, &device)?;
    let trained = train(
        &cfg,
        &run_dir,
        &device,
        dissolver.as_deref(),
        opts,
        &mut on_step,
    );
    let summary = crate::device::explain_out_of_memory(
        trained.map_err(anyhow::Error::from),
        &device,
        cfg.batch_size,
        free_at_start,
    )?;
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
