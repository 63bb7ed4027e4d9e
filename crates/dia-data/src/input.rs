//! Images given to a trained model (`dia predict`, `dia embed`, `dia dissolve`): an image file,
//! a folder of images (searched recursively) or a `.npy` array (N, 3, H, W) in [0, 1], as one batch
//! with the source of every image.

use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::folder::{find_images, FolderDataset};
use crate::loader::load_batch;

/// The largest image side [`load_images`] decodes to (a 4096² RGB batch of one image is
/// 200 MB of f32; larger is a typo, not an experiment).
pub const MAX_IMAGE_SIZE: usize = 4096;

/// A `.npy` array of images as the tools take it: float32 or float64, shape (N, 3, H, W) with
/// N ≥ 1, every value finite and in [0, 1]. Anything else is refused naming the file, before
/// a wrong-typed or wrong-scaled array can be scored (issue #19: a uint8 array or values of
/// ±500 were scored without a word).
fn read_image_array(path: &Path) -> Result<Tensor> {
    let bad = |msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(crate::error::io_err(path))?;
    let a = crate::npy::parse(&bytes, path)?;
    let values = a.to_f32()?;
    let dims = match *a.shape {
        [n, 3, h, w] if n > 0 && h > 0 && w > 0 => (n, 3, h, w),
        ref d => {
            return Err(bad(format!(
                "expected an array of shape (N, 3, H, W) with N, H, W > 0, got {d:?}"
            )))
        }
    };
    let x = Tensor::from_vec(values, dims, &candle_core::Device::Cpu)?;
    let flat = x.flatten_all()?;
    let lo = flat.min(0)?.to_scalar::<f32>()?;
    let hi = flat.max(0)?.to_scalar::<f32>()?;
    // NaN compares false both ways: a NaN anywhere makes the sum NaN.
    let finite = flat.sum_all()?.to_scalar::<f32>()?.is_finite();
    if !finite || lo < 0.0 || hi > 1.0 {
        return Err(bad(format!(
            "values must be finite and in [0, 1]; this array spans [{lo}, {hi}]{}",
            if finite {
                ""
            } else {
                " and holds NaN or infinity"
            }
        )));
    }
    Ok(x)
}

/// The images of `input` as one f32 (N, 3, H, W) tensor, and where each came from
/// (`file.npy[i]` or the image's path). `input` is an image file, a folder of images (searched
/// recursively) or a `.npy` array of float values in [0, 1]. Images from files are decoded at
/// `size` × `size`.
pub fn load_images(input: &Path, size: usize) -> Result<(Tensor, Vec<String>)> {
    let bad = |msg: String| Error::Format {
        path: input.to_path_buf(),
        msg,
    };
    if !(1..=MAX_IMAGE_SIZE).contains(&size) {
        return Err(bad(format!(
            "image size {size} is outside 1..={MAX_IMAGE_SIZE}"
        )));
    }
    if input.extension().is_some_and(|e| e == "npy") {
        let x = read_image_array(input)?;
        let n = x.dim(0)?;
        let names = (0..n)
            .map(|i| format!("{}[{i}]", input.display()))
            .collect();
        return Ok((x, names));
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
