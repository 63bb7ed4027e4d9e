//! `dia quickstart`: the whole method on the embedded Fashion-MNIST sample, no download
//! (`dia_pipeline::Quickstart`): a small DDPM, CSI and DIA encoders, their evaluation, and
//! `runs/quickstart/` with `report.md`, `roc.png` and `dissolve.png`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dia_pipeline::Quickstart;

use crate::progress::Bars;

#[derive(Args)]
pub(crate) struct QuickstartArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// The embedded sample (run from the repository root).
    #[arg(long, default_value = "datasets/fashion-mnist-sample")]
    data: PathBuf,
    /// The normal class (Shirt: the most fine-grained; its nearest anomalies differ in detail).
    #[arg(long, default_value = "Shirt")]
    class: String,
    /// Also train DIA with the Gaussian-blur dissolver (three more cells, about 4 minutes).
    #[arg(long)]
    gaussian: bool,
    /// A seconds-long run for tests (the numbers mean nothing).
    #[arg(long, hide = true)]
    tiny: bool,
    /// Train the DDPM here (about 20 min on a 2-core CPU) instead of using the one shipped with
    /// the sample, which the same recipe (configs/quickstart-ddpm.yaml) trained.
    #[arg(long)]
    train_ddpm: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn run(args: QuickstartArgs) -> Result<()> {
    let plan = Quickstart {
        data: args.data.clone(),
        class: args.class.clone(),
        gaussian: args.gaussian,
        tiny: args.tiny,
        train_ddpm: args.train_ddpm,
    };
    // Checks the config (and that the sample is there) before anything is printed or opened.
    plan.experiment()?;
    let device = args.device.open()?;
    println!(
        "dia quickstart: DDPM + CSI + DIA on the embedded Fashion-MNIST sample, normal class {:?}; writing {}",
        args.class,
        args.out.display()
    );
    let done = plan.run(&args.out, &device, &Bars(indicatif::MultiProgress::new()))?;
    for r in &done.results {
        println!(
            "{:<14} seed {} AUROC {:.4} [{:.4}, {:.4}]",
            r.method, r.seed, r.auroc, r.auroc_ci_low, r.auroc_ci_high
        );
    }
    println!(
        "report: {} ({:.1} min)",
        done.report.display(),
        done.seconds / 60.0
    );
    Ok(())
}
