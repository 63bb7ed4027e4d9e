//! MedMNIST `.npz` files: `{train,val,test}_images` (N×H×W or N×H×W×3, uint8) and
//! `{train,val,test}_labels` (N or N×1), read with `candle_core::npy`.

use std::path::Path;

use candle_core::npy::NpzTensors;
use candle_core::DType;

use crate::dataset::ArrayDataset;
use crate::error::{format_err, layout_err, Result};
use crate::split::Split;

/// Reads one split of a MedMNIST-style `.npz` file.
pub fn read_npz_split(
    path: &Path,
    split: Split,
    classes: Option<Vec<String>>,
    size: Option<(usize, usize)>,
) -> Result<ArrayDataset> {
    if !path.is_file() {
        return Err(layout_err(path, "file not found"));
    }
    let npz = NpzTensors::new(path)
        .map_err(|e| format_err(path, format!("not a readable .npz file: {e}")))?;
    let get = |key: String| -> Result<candle_core::Tensor> {
        npz.get(&key)
            .map_err(|e| format_err(path, format!("cannot read array {key:?}: {e}")))?
            .ok_or_else(|| {
                layout_err(
                    path,
                    format!("no array {key:?} (split {:?} missing)", split.name()),
                )
            })
    };
    let images = get(format!("{}_images", split.name()))?;
    let labels = get(format!("{}_labels", split.name()))?;
    if images.dtype() != DType::U8 {
        return Err(format_err(
            path,
            format!("images are {:?}, expected uint8", images.dtype()),
        ));
    }
    let (n, h, w, c) = match *images.dims() {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        ref d => return Err(format_err(path, format!("images have shape {d:?}"))),
    };
    let label_values: Vec<i64> = labels
        .to_dtype(DType::I64)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1::<i64>())
        .map_err(|e| format_err(path, format!("cannot read labels: {e}")))?;
    if label_values.len() != n {
        return Err(format_err(
            path,
            format!(
                "{} labels for {n} images (labels shape {:?})",
                label_values.len(),
                labels.dims()
            ),
        ));
    }
    if let Some(bad) = label_values.iter().find(|&&l| l < 0) {
        return Err(format_err(path, format!("negative label {bad}")));
    }
    let labels: Vec<usize> = label_values.iter().map(|&l| l as usize).collect();
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let classes = classes.unwrap_or_else(|| (0..n_classes).map(|i| i.to_string()).collect());
    let pixels = images
        .flatten_all()
        .and_then(|t| t.to_vec1::<u8>())
        .map_err(|e| format_err(path, format!("cannot read images: {e}")))?;
    ArrayDataset::new(path, pixels, (n, h, w, c), labels, classes, size)
}
