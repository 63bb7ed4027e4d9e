//! `dia train-ddpm`, `dia dissolve` and `dia sample`: the DDPM of DIA (spec §2), through
//! `dia_diffusion::train` and `dia_pipeline::ddpm`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dia_diffusion::train::{train, RunOptions, StepInfo};
use dia_diffusion::DdpmConfig;
use dia_pipeline::ddpm::{
    check_output, dissolve_input, macs_table, sample as sample_images, write_images,
};
use dia_pipeline::ddpm::{DissolveRequest, SampleRequest};
use dia_pipeline::ddpm_report::write_ddpm_report;
use dia_pipeline::run::RunPlan;
use dia_pipeline::Progress;

use crate::progress::Bar;

#[derive(Args)]
pub(crate) struct TrainDdpmArgs {
    #[command(flatten)]
    run: crate::train::RunArgs,
    /// Stop after this many steps (after a checkpoint), as if interrupted.
    #[arg(long, hide = true)]
    stop_after_steps: Option<usize>,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn train_ddpm(args: TrainDdpmArgs) -> Result<()> {
    let RunPlan {
        config: cfg,
        dir,
        resume,
    } = args.run.plan(DdpmConfig::validate)?;
    let device = args.device.open()?;
    let free_at_start = dia_pipeline::device::memory(&device).map(|m| m.0);
    let pb = Bar::new("ddpm [{bar:30}] {pos}/{len} {msg} ({eta})");
    pb.set_length(cfg.steps as u64);
    // The report of the latest checkpoint (the last step always writes one); the first error
    // stops further reports and is returned after training.
    let mut report = None;
    let mut on_step = |s: &StepInfo| {
        pb.set_message(format!("loss {:.4} |g| {:.3}", s.loss, s.grad_norm));
        pb.set_position(s.step as u64);
        if s.saved && !matches!(report, Some(Err(_))) {
            report = Some(write_ddpm_report(&dir, &cfg));
        }
    };
    let opts = RunOptions {
        resume,
        stop_after_steps: args.stop_after_steps,
    };
    let trained = train(&cfg, &dir, &device, opts, &mut on_step);
    let summary =
        crate::device::explain_out_of_memory(trained, &device, cfg.batch_size, free_at_start)?;
    pb.finish();
    // Nothing trained (a finished run resumed): the report is written from its files.
    let report = match report {
        Some(r) => r?,
        None => write_ddpm_report(&dir, &cfg)?,
    };
    if summary.first_loss.is_nan() {
        println!(
            "{}: all {} steps were already done",
            dir.display(),
            cfg.steps
        );
    } else {
        println!(
            "{}: {} of {} steps, loss {:.4} -> {:.4}; weights in {}",
            dir.display(),
            summary.steps_done,
            cfg.steps,
            summary.first_loss,
            summary.last_loss,
            dir.join("model.safetensors").display()
        );
    }
    if summary.plateaued {
        println!(
            "stopped on a plateau of the smoothed loss ({:.4})",
            report.smoothed_loss
        );
    }
    for r in &report.strength {
        println!(
            "dissolving strength at t = {}: mean |D(x) - x| {:.4}, PSNR {:.2} dB, finest detail removed {:.1} %",
            r.t,
            r.mean_abs_change,
            r.psnr_db,
            100.0 * r.detail_removed
        );
    }
    for s in &summary.samples {
        println!("samples: {}", s.display());
    }
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}

#[derive(Args)]
pub(crate) struct DissolveArgs {
    /// DDPM checkpoint: ours (.safetensors) or a lucidrains Trainer file (model-N.pt).
    #[arg(long, required_unless_present = "macs")]
    checkpoint: Option<PathBuf>,
    /// An image (PNG/JPEG), a folder of images, or a .npy float array (N, 3, H, W) in [0, 1].
    #[arg(required_unless_present = "macs")]
    input: Option<PathBuf>,
    /// Timesteps, e.g. `--t 50,100,200,400` (the paper's figure).
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400")]
    t: Vec<usize>,
    /// Output: .png (a strip per image: original, then one tile per t) or .npy.
    #[arg(long, short, default_value = "dissolved.png")]
    output: PathBuf,
    /// Side images from files are decoded at (default: the DDPM's resolution).
    #[arg(long)]
    image_size: Option<usize>,
    /// Map [0,1] to [-1,1] around the UNet (not the reference's behaviour).
    #[arg(long)]
    normalize_input: bool,
    /// Print the UNet's multiply-accumulates per image at 32, 64 and 128 px and exit.
    #[arg(long)]
    macs: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn dissolve(args: DissolveArgs) -> Result<()> {
    if args.macs {
        print!("{}", macs_table(args.checkpoint.as_deref())?);
        return Ok(());
    }
    let (Some(ckpt), Some(input)) = (&args.checkpoint, &args.input) else {
        anyhow::bail!("give --checkpoint and an input");
    };
    check_output(&args.output)?;
    let device = args.device.open()?;
    let req = DissolveRequest {
        timesteps: args.t.clone(),
        image_size: args.image_size,
        normalize_input: args.normalize_input,
    };
    println!(
        "{}",
        dissolve_input(ckpt, input, &req, &device)?.write(&args.output)?
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct SampleArgs {
    /// DDPM checkpoint (use the run's ema.safetensors for the best samples).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of images.
    #[arg(long, short, default_value_t = 16)]
    n: usize,
    /// DDIM steps; 0 runs the full ancestral loop over all T steps.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// DDIM η.
    #[arg(long, default_value_t = 1.0)]
    eta: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output .png grid (or .npy).
    #[arg(long, short, default_value = "samples.png")]
    output: PathBuf,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn sample(args: SampleArgs) -> Result<()> {
    check_output(&args.output)?;
    let device = args.device.open()?;
    let req = SampleRequest {
        n: args.n,
        steps: args.steps,
        eta: args.eta,
        seed: args.seed,
    };
    let pb = Bar::new("sampling [{bar:30}] {pos}/{len} ({eta})");
    let imgs = sample_images(&args.checkpoint, req, &device, &pb)?;
    pb.finish();
    write_images(&imgs, &args.output)?;
    println!("wrote {} ({} samples)", args.output.display(), args.n);
    Ok(())
}
