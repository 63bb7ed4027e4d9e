//! `dia train`: train a CSI or DIA encoder from a YAML config.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dia_contrastive::{train, RunOptions, StepInfo, TrainConfig};
use dia_pipeline::run::RunPlan;
use dia_pipeline::Progress;

use crate::progress::Bar;

/// `--config` / `--run` / `--resume`, shared by `dia train` and `dia train-ddpm`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The config (YAML).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Run directory (default: `runs/<config name>`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint, with its config.yaml.
    #[arg(long, conflicts_with_all = ["config", "run"])]
    resume: Option<PathBuf>,
}

impl RunArgs {
    /// The run these flags ask for, its config checked with `validate`.
    pub(crate) fn plan<T: serde::de::DeserializeOwned>(
        &self,
        validate: impl Fn(&T) -> std::result::Result<(), String>,
    ) -> Result<RunPlan<T>> {
        Ok(RunPlan::new(
            self.config.as_deref(),
            self.run.as_deref(),
            self.resume.as_deref(),
            validate,
        )?)
    }
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Stop after this many epochs (after their checkpoint), as if interrupted.
    #[arg(long, hide = true)]
    stop_after_epochs: Option<usize>,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn run(args: TrainArgs) -> Result<()> {
    let RunPlan {
        config: cfg,
        dir: run_dir,
        resume,
    } = args.run.plan(TrainConfig::validate)?;
    let device = args.device.open()?;
    let free_at_start = dia_pipeline::device::memory(&device).map(|m| m.0);
    let bar = Bar::new("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})");
    let mut started = false;
    let mut on_step = |s: &StepInfo| {
        if !started {
            started = true;
            bar.set_length((s.iterations * cfg.epochs) as u64);
        }
        bar.set_stage(&format!("epoch {}/{}", s.epoch, cfg.epochs));
        bar.set_message(format!(
            "loss {:.4} (con {:.4}, shift {:.4}) lr {:.4} {:.0} img/s",
            s.losses.total(),
            s.losses.contrastive,
            s.losses.shift,
            s.lr,
            s.images_per_s
        ));
        bar.set_position(((s.epoch - 1) * s.iterations + s.iteration + 1) as u64);
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
    let summary =
        crate::device::explain_out_of_memory(trained, &device, cfg.batch_size, free_at_start)?;
    bar.finish();
    if summary.first_epoch_loss.is_nan() {
        println!(
            "{}: all {} epochs were already done; nothing to train",
            run_dir.display(),
            cfg.epochs
        );
        return Ok(());
    }
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
