//! The features of a trained encoder for given images, without augmentation, in eval mode
//! (`dia embed`): the penultimate layer, the SimCLR projection and the shift logits (spec §5).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use dia_encoder::{Arch, EncoderConfig};
use dia_io::keys;

use crate::error::{Error, Result};

/// The features of a batch of images.
#[derive(Debug)]
pub struct Embeddings {
    /// `penultimate`, `simclr` and `shift`, each (N, D), sorted by name.
    pub tensors: Vec<(String, Tensor)>,
    /// Where each image came from.
    pub sources: Vec<String>,
    /// The encoder.
    pub encoder: EncoderConfig,
}

/// Embeds the images of `input` (an image, a folder or a `.npy`) with the encoder checkpoint
/// `ckpt`, `batch_size` images per forward pass; images from files are decoded at
/// `image_size` (default: 32 for resnet18, 224 for resnet18_imagenet).
pub fn embed(
    ckpt: &Path,
    input: &Path,
    image_size: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<Embeddings> {
    if batch_size == 0 {
        return Err(Error::Config("the batch size must be positive".into()));
    }
    let (model, _) = crate::load_encoder(ckpt, device)?;
    let encoder = model.config();
    let size = image_size.unwrap_or(match encoder.arch {
        Arch::ResNet18 => 32,
        Arch::ResNet18ImageNet => 224,
    });
    let (x, sources) = dia_data::load_images(input, size)?;
    let n = x.dim(0)?;
    let mut parts: HashMap<&str, Vec<Tensor>> = HashMap::new();
    for start in (0..n).step_by(batch_size) {
        let batch = x
            .narrow(0, start, batch_size.min(n - start))?
            .to_device(device)?;
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
    let mut tensors = parts
        .into_iter()
        .map(|(name, ts)| Ok((name.to_string(), Tensor::cat(&ts, 0)?)))
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Embeddings {
        tensors,
        sources,
        encoder,
    })
}

impl Embeddings {
    /// Writes the features as `.safetensors`, with the sources, the checkpoint and the
    /// encoder config in its metadata.
    pub fn write(&self, output: &Path, ckpt: &Path) -> Result<()> {
        let json_err = |source| Error::Json {
            path: output.to_path_buf(),
            source,
        };
        let meta = BTreeMap::from([
            (
                keys::SOURCES.to_string(),
                serde_json::to_string(&self.sources).map_err(json_err)?,
            ),
            (keys::CHECKPOINT.to_string(), ckpt.display().to_string()),
            (
                keys::ENCODER.to_string(),
                serde_json::to_string(&self.encoder).map_err(json_err)?,
            ),
        ]);
        Ok(dia_io::save_safetensors(output, &self.tensors, &meta)?)
    }
}
