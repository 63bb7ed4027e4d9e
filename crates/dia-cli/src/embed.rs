//! `dia embed`: the features of a trained encoder for a batch of images, without augmentation.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Tensor;
use clap::Args;
use dia_encoder::Arch;
use dia_io::keys;

#[derive(Args)]
pub(crate) struct EmbedArgs {
    /// Encoder checkpoint: ours (.safetensors) or the reference's PyTorch file (.model / .pth).
    #[arg(long)]
    checkpoint: PathBuf,
    /// A .npy float array (N, 3, H, W) in [0, 1], or a folder of images (searched recursively).
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
        bail!("--batch-size must be positive");
    }
    let device = args.device.open()?;
    let (model, _) = dia_pipeline::load_encoder(&args.checkpoint, &device)?;
    let cfg = model.config();
    let size = args.image_size.unwrap_or(match cfg.arch {
        Arch::ResNet18 => 32,
        Arch::ResNet18ImageNet => 224,
    });
    let (x, sources) = dia_data::load_images(&args.input, size)?;
    let n = x.dim(0)?;
    let mut parts: HashMap<&str, Vec<Tensor>> = HashMap::new();
    for start in (0..n).step_by(args.batch_size) {
        let batch = x
            .narrow(0, start, args.batch_size.min(n - start))?
            .to_device(&device)?;
        let out = model.forward_t(&batch, false)?;
        for (name, t) in [
            ("penultimate", out.penultimate),
            ("simclr", out.simclr),
            ("shift", out.shift),
        ] {
            // Detached, or each kept output would hold its pass's whole autograd graph.
            parts.entry(name).or_default().push(t.detach());
        }
    }
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, ts) in parts {
        tensors.push((name.to_string(), Tensor::cat(&ts, 0)?));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = std::collections::BTreeMap::from([
        (keys::SOURCES.to_string(), serde_json::to_string(&sources)?),
        (
            keys::CHECKPOINT.to_string(),
            args.checkpoint.display().to_string(),
        ),
        (keys::ENCODER.to_string(), serde_json::to_string(&cfg)?),
    ]);
    dia_io::save_safetensors(&args.output, &tensors, &meta)?;
    println!(
        "wrote {} ({n} images: penultimate {}, simclr {}, shift {})",
        args.output.display(),
        cfg.last_dim(),
        cfg.simclr_dim,
        cfg.k_shift
    );
    Ok(())
}
