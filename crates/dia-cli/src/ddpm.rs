//! `dia train-ddpm`, `dia dissolve` and `dia sample`: the DDPM of DIA (spec §2).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use dia_diffusion::checkpoint::load_any;
use dia_diffusion::macs::unet_macs;
use dia_diffusion::sample::{ddim_sample, p_sample_loop};
use dia_diffusion::train::{train, RunOptions, StepInfo};
use dia_diffusion::{DdpmConfig, DiffusionDissolver, DissolverConfig, Resolution, UnetConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

#[derive(Args)]
pub(crate) struct TrainDdpmArgs {
    /// The DDPM config (YAML).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Run directory (default: `runs/<config name>`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint, with its config.yaml.
    #[arg(long, conflicts_with_all = ["config", "run"])]
    resume: Option<PathBuf>,
    /// Stop after this many steps (after a checkpoint), as if interrupted.
    #[arg(long, hide = true)]
    stop_after_steps: Option<usize>,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

pub(crate) fn train_ddpm(args: TrainDdpmArgs) -> Result<()> {
    let (cfg, dir, resume) = crate::train::run_setup(
        args.config.as_deref(),
        args.run.as_deref(),
        args.resume.as_deref(),
        "model.safetensors",
        |p| crate::train::read_yaml(p, DdpmConfig::validate),
    )?;
    let device = args.device.open()?;
    let free_at_start = crate::device::memory(&device).map(|m| m.0);
    let pb = bar(
        cfg.steps as u64,
        "ddpm [{bar:30}] {pos}/{len} {msg} ({eta})",
    );
    let mut on_step = |s: &StepInfo| {
        pb.set_position(s.step as u64);
        pb.set_message(format!("loss {:.4} |g| {:.3}", s.loss, s.grad_norm));
    };
    let opts = RunOptions {
        resume,
        stop_after_steps: args.stop_after_steps,
    };
    let summary = crate::device::explain_out_of_memory(
        train(&cfg, &dir, &device, opts, &mut on_step).map_err(anyhow::Error::from),
        &device,
        cfg.batch_size,
        free_at_start,
    )?;
    pb.finish_and_clear();
    println!(
        "{}: {} of {} steps, loss {:.4} -> {:.4}; weights in {}",
        dir.display(),
        summary.steps_done,
        cfg.steps,
        summary.first_loss,
        summary.last_loss,
        dir.join("model.safetensors").display()
    );
    for s in &summary.samples {
        println!("samples: {}", s.display());
    }
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
    #[arg(long, short)]
    output: Option<PathBuf>,
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

fn print_macs(cfg: &UnetConfig) {
    println!(
        "UNet(dim={}, dim_mults={:?}) multiply-accumulates per image:",
        cfg.dim, cfg.dim_mults
    );
    for s in [32, 64, 128] {
        println!("  {s:>3} px: {:>7.2} GMACs", unet_macs(cfg, s) as f64 / 1e9);
    }
}

/// Writes `x` as .npy through a temporary file and a rename.
pub(crate) fn write_npy_atomic(x: &Tensor, path: &Path) -> Result<()> {
    dia_io::atomic::write_atomic_path(path, |tmp| x.write_npy(tmp).map_err(std::io::Error::other))
        .with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn dissolve(args: DissolveArgs) -> Result<()> {
    if args.macs {
        let cfg = match &args.checkpoint {
            // Only the config is read: nothing is computed, so the host is enough.
            Some(p) => load_any(p, &Device::Cpu)?.1.unet,
            None => UnetConfig::default(),
        };
        print_macs(&cfg);
        return Ok(());
    }
    let (Some(ckpt), Some(input)) = (&args.checkpoint, &args.input) else {
        bail!("give --checkpoint and an input");
    };
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("dissolved.png"));
    let device = args.device.open()?;
    let (ddpm, meta) = load_any(ckpt, &device)?;
    let t_max = ddpm.schedule().timesteps();
    if args.t.is_empty() || args.t.iter().any(|&t| t >= t_max) {
        bail!("--t takes timesteps in 0..{t_max}, got {:?}", args.t);
    }
    let (x, _) = dia_data::load_images(input, args.image_size.unwrap_or(meta.image_size))?;
    let d = DiffusionDissolver::new(
        ddpm,
        meta.image_size,
        DissolverConfig {
            normalize_input: args.normalize_input,
            resolution: Resolution::Auto,
            ..DissolverConfig::default()
        },
    )?;
    let outs: Vec<Tensor> = args
        .t
        .iter()
        .map(|&t| d.dissolve_at(&x, t))
        .collect::<dia_diffusion::Result<_>>()?;
    match output.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            let y = if outs.len() == 1 {
                outs[0].clone()
            } else {
                Tensor::stack(&outs, 0)?
            };
            write_npy_atomic(&y, &output)?;
            println!("wrote {} (shape {:?})", output.display(), y.dims());
        }
        Some("png") => {
            let columns: Vec<&Tensor> = std::iter::once(&x).chain(outs.iter()).collect();
            let img = dia_data::image_io::columns_grid(&columns, 96)?;
            dia_data::image_io::save_png(&output, &img)?;
            println!(
                "wrote {} ({} images; columns: original, t = {:?})",
                output.display(),
                x.dim(0)?,
                args.t
            );
        }
        _ => bail!("{}: the output must end in .png or .npy", output.display()),
    }
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
    if args.n == 0 {
        bail!("-n must be positive");
    }
    let device = args.device.open()?;
    let (ddpm, meta) = load_any(&args.checkpoint, &device)?;
    let shape = (args.n, meta.unet.channels, meta.image_size, meta.image_size);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let total = if args.steps == 0 {
        meta.timesteps
    } else {
        args.steps
    };
    let pb = bar(total as u64, "sampling [{bar:30}] {pos}/{len} ({eta})");
    let mut progress = |done: usize, _| pb.set_position(done as u64);
    let imgs = if args.steps == 0 {
        p_sample_loop(&ddpm, shape, &mut rng, &mut progress)?
    } else {
        ddim_sample(&ddpm, shape, args.steps, args.eta, &mut rng, &mut progress)?
    };
    pb.finish_and_clear();
    if args.output.extension().is_some_and(|e| e == "npy") {
        write_npy_atomic(&imgs, &args.output)?;
    } else {
        let img = dia_data::image_io::square_grid(&imgs, 64)?;
        dia_data::image_io::save_png(&args.output, &img)?;
    }
    println!("wrote {} ({} samples)", args.output.display(), args.n);
    Ok(())
}
