//! Encoder checkpoints: importing the reference's PyTorch files and our own safetensors files.
//!
//! The reference saves `torch.save(model.state_dict())` as `last.model` / `best_*.model`
//! (spec §8), with a `module.` prefix when trained with DataParallel. They are read with
//! candle's pickle reader, which only understands tensors and executes no code. Our
//! checkpoints are safetensors files with the reference's names (so PyTorch can read them back)
//! and a `dia` metadata entry holding the [`EncoderConfig`] as JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::resnet::{Arch, EncoderConfig, ResNet18};
use dia_nn::Source;

/// The metadata key of the encoder configuration in our safetensors files.
pub const CONFIG_KEY: &str = dia_io::keys::ENCODER;

fn file_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// `e`, said to be about the file `path`.
fn in_file(path: &Path) -> impl FnOnce(Error) -> Error + '_ {
    move |e| Error::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Reads a reference encoder checkpoint (`.model` / `.pth`, PyTorch ≥ 1.6 zip format) into
/// named tensors, without a `module.` prefix.
pub fn read_reference_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = dia_io::read_pytorch(path, None)?;
    if tensors.is_empty() {
        return Err(file_err(path, "no tensor found (is it a state dict?)"));
    }
    Ok(tensors
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect())
}

/// Infers the encoder's configuration from the shapes of its tensors.
pub fn infer_config(tensors: &HashMap<String, Tensor>) -> Result<EncoderConfig> {
    let dims = |name: &str| -> Result<Vec<usize>> {
        tensors
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::Shapes(format!("missing tensor {name:?}")))
    };
    let conv1 = dims("conv1.weight")?;
    let (width, k) = match conv1[..] {
        [w, 3, k, k2] if k == k2 => (w, k),
        _ => return Err(Error::Shapes(format!("conv1.weight has shape {conv1:?}"))),
    };
    let arch = match k {
        3 => Arch::ResNet18,
        7 => Arch::ResNet18ImageNet,
        _ => {
            return Err(Error::Shapes(format!(
                "conv1.weight has a {k}x{k} kernel; expected 3 (resnet18) or 7 (resnet18_imagenet)"
            )))
        }
    };
    let rows = |name: &str| -> Result<usize> { Ok(dims(name)?[0]) };
    Ok(EncoderConfig {
        arch,
        width,
        num_classes: rows("linear.weight")?,
        k_shift: rows("shift_cls_layer.weight")?,
        simclr_dim: rows("simclr_layer.2.weight")?,
    })
}

/// Loads a reference checkpoint as a model: every name and shape is checked, and anything
/// missing, unexpected or mis-shaped is an error naming the tensor and the file.
pub fn load_reference_checkpoint(path: &Path, device: &Device) -> Result<ResNet18> {
    let tensors = read_reference_checkpoint(path)?;
    let cfg = infer_config(&tensors).map_err(in_file(path))?;
    ResNet18::new(cfg, Source::Tensors(&tensors), device).map_err(in_file(path))
}

/// Saves the model as safetensors with its configuration and `extra` metadata, atomically
/// (temporary file, then rename).
pub fn save_checkpoint(
    model: &ResNet18,
    path: &Path,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let mut meta = extra.clone();
    meta.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_string(&model.config()).map_err(|e| Error::Config(e.to_string()))?,
    );
    let entries: Vec<(String, Tensor)> = model.state_dict()?.into_iter().collect();
    Ok(dia_io::save_safetensors(path, &entries, &meta)?)
}

/// Loads one of our safetensors checkpoints (or any safetensors file with the reference's
/// names, whose configuration is then inferred from the shapes). Returns the model and the
/// file's metadata.
pub fn load_checkpoint(
    path: &Path,
    device: &Device,
) -> Result<(ResNet18, HashMap<String, String>)> {
    let (tensors, meta) = dia_io::load_safetensors(path, device)?;
    let cfg = match meta.get(CONFIG_KEY) {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| file_err(path, format!("bad {CONFIG_KEY} metadata: {e}")))?,
        None => infer_config(&tensors).map_err(in_file(path))?,
    };
    let model = ResNet18::new(cfg, Source::Tensors(&tensors), device).map_err(in_file(path))?;
    Ok((model, meta.into_iter().collect()))
}
