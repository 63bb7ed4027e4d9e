//! `cargo xtask convert encoder|ddpm IN OUT.safetensors`: PyTorch checkpoints of the reference
//! to our safetensors files, through the loaders of dia-encoder and dia-diffusion (which check
//! every name and shape, and never execute code from the file).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;

/// Converts a reference encoder (`last.model` / `best_*.model`).
pub fn encoder(input: &Path, output: &Path) -> Result<()> {
    let model = dia_encoder::load_reference_checkpoint(input, &Device::Cpu)?;
    let meta = BTreeMap::from([(
        dia_io::keys::CONVERTED_FROM.to_string(),
        input.display().to_string(),
    )]);
    dia_encoder::save_checkpoint(&model, output, &meta)
        .with_context(|| format!("writing {}", output.display()))?;
    let cfg = model.config();
    println!(
        "converted {} -> {}: {:?} width {}, {} shift logits, simclr {}-d, {} tensors",
        input.display(),
        output.display(),
        cfg.arch,
        cfg.width,
        cfg.k_shift,
        cfg.simclr_dim,
        model.state_dict()?.len()
    );
    Ok(())
}

/// Converts a lucidrains Trainer DDPM checkpoint (`model-N.pt`, its raw `model` entry).
pub fn ddpm(input: &Path, output: &Path, image_size: usize) -> Result<()> {
    let (meta, n) =
        dia_diffusion::checkpoint::convert_trainer_checkpoint(input, output, image_size)?;
    println!(
        "converted {} -> {}: UNet(dim={}, dim_mults={:?}), T = {}, {image_size} px, {n} tensors",
        input.display(),
        output.display(),
        meta.unet.dim,
        meta.unet.dim_mults,
        meta.timesteps
    );
    Ok(())
}
