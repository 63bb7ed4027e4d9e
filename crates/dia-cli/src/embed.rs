//! `dia embed`: the features of a trained encoder for images, without augmentation
//! (`dia_pipeline::embed`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub(crate) struct EmbedArgs {
    /// Encoder checkpoint: ours (.safetensors) or the reference's PyTorch file (.model / .pth).
    #[arg(long)]
    checkpoint: PathBuf,
    /// An image, a folder of images (searched recursively), or a .npy float array
    /// (N, 3, H, W) in [0, 1].
    #[arg(long)]
    input: PathBuf,
    /// Output .safetensors with `penultimate`, `simclr` and `shift` (eval mode).
    #[arg(long)]
    output: PathBuf,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Side of the square images decoded from a folder (default: 32 for resnet18, 224 for
    /// resnet18_imagenet).
    #[arg(long)]
    image_size: Option<usize>,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn run(args: EmbedArgs) -> Result<()> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be positive");
    }
    let device = args.device.open()?;
    let e = dia_pipeline::embed(
        &args.checkpoint,
        &args.input,
        args.image_size,
        args.batch_size,
        &device,
    )?;
    e.write(&args.output, &args.checkpoint)?;
    println!(
        "wrote {} ({} images: penultimate {}, simclr {}, shift {})",
        args.output.display(),
        e.sources.len(),
        e.encoder.last_dim(),
        e.encoder.simclr_dim,
        e.encoder.k_shift
    );
    Ok(())
}
