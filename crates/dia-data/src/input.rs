//! Images given to a trained model (`dia predict`, `dia embed`, `dia dissolve`): a `.npy`
//! array (N, 3, H, W) in [0, 1], or a folder of images (searched recursively), as one batch
//! with the source of every image.

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::folder::{find_images, FolderDataset};
use crate::loader::load_batch;

/// The images of `input` as one f32 (N, 3, H, W) tensor, and where each came from
/// (`file.npy[i]` or the image's path). Images from files are decoded at `size` × `size`.
pub fn load_images(input: &Path, size: usize) -> Result<(Tensor, Vec<String>)> {
    let bad = |msg: String| Error::Format {
        path: input.to_path_buf(),
        msg,
    };
    if input.extension().is_some_and(|e| e == "npy") {
        let x = Tensor::read_npy(input)
            .map_err(|e| bad(format!("not a readable .npy array: {e}")))?
            .to_dtype(DType::F32)?;
        return match x.dims() {
            [n, 3, _, _] => {
                let names = (0..*n)
                    .map(|i| format!("{}[{i}]", input.display()))
                    .collect();
                Ok((x, names))
            }
            d => Err(bad(format!(
                "expected an array of shape (N, 3, H, W), got {d:?}"
            ))),
        };
    }
    let paths = find_images(input)?;
    if paths.is_empty() {
        return Err(Error::Layout {
            path: input.to_path_buf(),
            msg: "no .png/.jpg/.jpeg image found".into(),
        });
    }
    let samples = paths.iter().map(|p| (p.clone(), 0)).collect();
    let ds = FolderDataset::from_samples(samples, vec!["images".into()], Some((size, size)))?;
    let x = load_batch(&ds, (0..paths.len()).collect())?.images;
    Ok((x, paths.iter().map(|p| p.display().to_string()).collect()))
}
