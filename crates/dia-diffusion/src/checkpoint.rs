//! DDPM checkpoints: lucidrains Trainer `.pt` files (spec §8) and our safetensors files.
//!
//! A Trainer file is a dict `{step, model, opt, ema, scaler}`; `model` is the state dict of
//! `GaussianDiffusion`: the 13 schedule buffers at the top level and the UNet's tensors under
//! `model.`. Our safetensors files use exactly those names, so PyTorch can load them with
//! `GaussianDiffusion.load_state_dict(safetensors.torch.load_file(path))`, and carry the
//! [`UnetConfig`] and the training resolution in the metadata entry `dia.ddpm`.
//!
//! Reading a `.pt` file never executes code: candle's pickle reader only rebuilds tensors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::diffusion::GaussianDiffusion;
use crate::error::{Error, Result};
use crate::schedule::{Schedule, BUFFER_NAMES};
use crate::unet::{Unet, UnetConfig};

/// The metadata key of [`DdpmMeta`] in our safetensors files.
pub const META_KEY: &str = dia_io::keys::DDPM;
/// The prefix of the UNet's tensors in `GaussianDiffusion`'s state dict.
pub const UNET_PREFIX: &str = "model.";

/// What a DDPM checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DdpmMeta {
    /// The UNet's shape.
    pub unet: UnetConfig,
    /// The square resolution it was trained at (32 in the paper).
    pub image_size: usize,
    /// Diffusion timesteps T.
    pub timesteps: usize,
    /// Optimiser steps trained (0 for converted or fresh models when unknown).
    #[serde(default)]
    pub step: usize,
    /// Whether these are the EMA weights.
    #[serde(default)]
    pub ema: bool,
    /// Training stopped here because the loss had plateaued (the config's `plateau`), before
    /// its `steps`: the run is finished all the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plateaued: bool,
}

fn ckpt_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Reads the `model` entry of a lucidrains Trainer checkpoint (`model-N.pt`, PyTorch ≥ 1.6
/// zip format) into named tensors. `key` selects another entry (e.g. `"ema"`, whose UNet
/// tensors are under `ema_model.model.`; the prefix `ema_model.` is stripped).
pub fn read_trainer_checkpoint(path: &Path, key: &str) -> Result<HashMap<String, Tensor>> {
    let tensors = dia_io::read_pytorch(path, Some(key))?;
    if tensors.is_empty() {
        return Err(ckpt_err(
            path,
            format!("no tensor under {key:?} (is it a lucidrains Trainer checkpoint?)"),
        ));
    }
    Ok(tensors
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("ema_model.")
                    .map(str::to_string)
                    .unwrap_or(k),
                v,
            )
        })
        .filter(|(k, _)| k != "initted" && k != "step")
        .collect())
}

/// Infers the UNet's shape from `GaussianDiffusion` tensor names and shapes (GroupNorm groups
/// cannot be seen in the shapes; the library default 8 is assumed).
pub fn infer_unet_config(tensors: &HashMap<String, Tensor>) -> Result<UnetConfig> {
    let dims = |name: &str| -> Result<Vec<usize>> {
        tensors
            .get(&format!("{UNET_PREFIX}{name}"))
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::Weights(format!("missing: {UNET_PREFIX}{name}")))
    };
    let init = dims("init_conv.weight")?;
    let [dim, channels, 7, 7] = init[..] else {
        return Err(Error::Weights(format!(
            "{UNET_PREFIX}init_conv.weight has shape {init:?}, expected (dim, channels, 7, 7)"
        )));
    };
    let mut dim_mults = Vec::new();
    while let Ok(d) = dims(&format!("downs.{}.3.weight", dim_mults.len())) {
        if d[0] % dim != 0 {
            return Err(Error::Weights(format!(
                "downs.{}.3.weight has {} output channels, not a multiple of dim {dim}",
                dim_mults.len(),
                d[0]
            )));
        }
        dim_mults.push(d[0] / dim);
    }
    if dim_mults.is_empty() {
        return Err(Error::Weights(format!(
            "missing: {UNET_PREFIX}downs.0.3.weight"
        )));
    }
    Ok(UnetConfig {
        dim,
        dim_mults,
        channels,
        groups: 8,
    })
}

/// Builds the DDPM from `GaussianDiffusion` tensors: the UNet's under `model.`, the schedule
/// buffers when present (else recomputed). Every missing, unexpected or mis-shaped tensor is
/// reported.
pub fn diffusion_from_tensors(
    tensors: &HashMap<String, Tensor>,
    cfg: &UnetConfig,
    timesteps: usize,
    device: &Device,
) -> Result<GaussianDiffusion> {
    let mut unet_tensors = HashMap::new();
    let mut unexpected = Vec::new();
    for (k, v) in tensors {
        match k.strip_prefix(UNET_PREFIX) {
            Some(name) => {
                unet_tensors.insert(name.to_string(), v.clone());
            }
            None if BUFFER_NAMES.contains(&k.as_str()) => {}
            None => unexpected.push(format!("unexpected: {k}")),
        }
    }
    let unet = Unet::from_tensors(cfg, &unet_tensors, device).map_err(|e| match e {
        // The UNet's names, as the file has them (under `model.`), plus the file's own extras.
        Error::Mismatch(m) => Error::Mismatch(dia_nn::params::Mismatch {
            problems: m
                .problems
                .iter()
                .map(|l| l.replacen(": ", &format!(": {UNET_PREFIX}"), 1))
                .chain(unexpected.iter().cloned())
                .collect(),
        }),
        e => e,
    })?;
    if !unexpected.is_empty() {
        return Err(Error::Mismatch(dia_nn::params::Mismatch {
            problems: unexpected,
        }));
    }
    let schedule = Schedule::from_tensors(tensors, timesteps)?;
    Ok(GaussianDiffusion::new(unet, schedule))
}

/// Loads a lucidrains Trainer checkpoint (`model-N.pt`) as a DDPM: the raw model, as DIA does
/// (spec §2.1). Returns the model and its inferred metadata (`image_size` 32 unless told).
pub fn load_trainer_checkpoint(
    path: &Path,
    image_size: usize,
    device: &Device,
) -> Result<(GaussianDiffusion, DdpmMeta)> {
    let tensors = read_trainer_checkpoint(path, "model")?;
    trainer_diffusion(path, &tensors, image_size, device)
}

/// The DDPM and its inferred metadata from the `model` tensors of a Trainer file at `path`.
fn trainer_diffusion(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    image_size: usize,
    device: &Device,
) -> Result<(GaussianDiffusion, DdpmMeta)> {
    let unet = infer_unet_config(tensors).map_err(|e| ckpt_err(path, e))?;
    let timesteps = tensors.get("betas").map(|t| t.elem_count()).unwrap_or(1000);
    let ddpm =
        diffusion_from_tensors(tensors, &unet, timesteps, device).map_err(|e| ckpt_err(path, e))?;
    let meta = DdpmMeta {
        plateaued: false,
        unet,
        image_size,
        timesteps,
        step: 0,
        ema: false,
    };
    Ok((ddpm, meta))
}

/// `GaussianDiffusion`'s state dict: the UNet's tensors under `model.` and the 13 buffers.
pub fn state_dict(
    unet_tensors: &BTreeMap<String, Tensor>,
    schedule: &Schedule,
) -> Result<BTreeMap<String, Tensor>> {
    let mut out: BTreeMap<String, Tensor> = unet_tensors
        .iter()
        .map(|(k, v)| (format!("{UNET_PREFIX}{k}"), v.clone()))
        .collect();
    out.extend(schedule.to_tensors()?);
    Ok(out)
}

/// Writes named tensors as safetensors with `meta` under [`META_KEY`], atomically.
pub fn save_tensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    meta: &DdpmMeta,
) -> Result<()> {
    let json = serde_json::to_string(meta).map_err(|e| ckpt_err(path, e))?;
    let entries: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = BTreeMap::from([(META_KEY.to_string(), json)]);
    Ok(dia_io::save_safetensors(path, &entries, &meta)?)
}

/// Reads a safetensors file written by [`save_tensors`]: the tensors and the metadata.
pub fn read_tensors(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, Option<DdpmMeta>)> {
    let (tensors, meta) = dia_io::load_safetensors(path, device)?;
    Ok((tensors, parse_meta(path, &meta)?))
}

/// The [`DdpmMeta`] of a file written by [`save_tensors`], without building its tensors (what
/// "is this run finished?" needs); `None` for a safetensors file without it.
pub fn read_meta(path: &Path) -> Result<Option<DdpmMeta>> {
    parse_meta(path, &dia_io::read_metadata(path)?)
}

fn parse_meta(path: &Path, meta: &BTreeMap<String, String>) -> Result<Option<DdpmMeta>> {
    meta.get(META_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| ckpt_err(path, format!("bad {META_KEY} metadata: {e}")))
        })
        .transpose()
}

/// Loads a DDPM from one of our safetensors files (or any safetensors file with
/// `GaussianDiffusion`'s names, whose shape is then inferred and resolution assumed 32).
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<(GaussianDiffusion, DdpmMeta)> {
    let (tensors, meta) = read_tensors(path, device)?;
    let meta = match meta {
        Some(m) => m,
        None => DdpmMeta {
            plateaued: false,
            unet: infer_unet_config(&tensors).map_err(|e| ckpt_err(path, e))?,
            image_size: 32,
            timesteps: tensors.get("betas").map(|t| t.elem_count()).unwrap_or(1000),
            step: 0,
            ema: false,
        },
    };
    let ddpm = diffusion_from_tensors(&tensors, &meta.unet, meta.timesteps, device)
        .map_err(|e| ckpt_err(path, e))?;
    Ok((ddpm, meta))
}

/// Loads a DDPM from either format, by extension: `.safetensors`, or a PyTorch file. An
/// `hf://OWNER/REPO/FILE` path is fetched from the Hub first (dia-data's `hub` feature).
pub fn load_any(path: &Path, device: &Device) -> Result<(GaussianDiffusion, DdpmMeta)> {
    let resolved = dia_io::hub::resolve(&path.to_string_lossy())?;
    let path = resolved.as_path();
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => load_checkpoint(path, device),
        _ => load_trainer_checkpoint(path, 32, device),
    }
}

/// Converts a Trainer checkpoint to our safetensors format (`cargo xtask convert ddpm`).
/// Returns the metadata and the number of tensors written.
pub fn convert_trainer_checkpoint(
    input: &Path,
    output: &Path,
    image_size: usize,
) -> Result<(DdpmMeta, usize)> {
    // Read once: validated through the model (built on the host: a file-to-file conversion
    // computes nothing), then written as they are.
    let tensors = read_trainer_checkpoint(input, "model")?;
    let (ddpm, meta) = trainer_diffusion(input, &tensors, image_size, &Device::Cpu)?;
    let mut sorted: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(candle_core::DType::F32)?)))
        .collect::<Result<_>>()?;
    // A state dict without the schedule buffers gets the recomputed ones.
    for (k, v) in ddpm.schedule().to_tensors()? {
        sorted.entry(k).or_insert(v);
    }
    save_tensors(output, &sorted, &meta)?;
    Ok((meta, sorted.len()))
}
