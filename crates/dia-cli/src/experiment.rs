//! `dia experiment --config E.yaml`: a grid of methods × normal classes × seeds
//! (`dia_pipeline::experiment`), with progress bars and the results table printed.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dia_pipeline::experiment::{markdown_table, run_grid, ExperimentConfig};

use crate::progress::Bars;

#[derive(Args)]
pub(crate) struct ExperimentArgs {
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

pub(crate) fn run(args: ExperimentArgs) -> Result<()> {
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
    let bars = Bars(indicatif::MultiProgress::new());
    let results = run_grid(&cfg, &out, args.jobs, &device, &bars)?;
    print!("{}", markdown_table(&results));
    println!(
        "wrote {} and {}",
        out.join("results.csv").display(),
        out.join("results.md").display()
    );
    Ok(())
}
