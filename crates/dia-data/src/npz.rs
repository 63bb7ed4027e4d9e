//! MedMNIST `.npz` files: `{train,val,test}_images` (N×H×W or N×H×W×3, uint8) and
//! `{train,val,test}_labels` (N or N×1), stored or deflate-compressed, each member parsed by
//! [`crate::npy`] with its sizes checked before allocation.

use std::path::Path;

use crate::dataset::ArrayDataset;
use crate::error::{format_err, layout_err, Result};
use crate::npy::{self, NpyType};
use crate::split::Split;

/// Labels must be below this (MedMNIST has at most 11 classes).
const MAX_CLASSES: i64 = 1 << 16;

/// The `.npy` members of a `.npz` file that [`read_npz_split`] reads, by name (without
/// `.npy`): stored or deflate-compressed (`np.savez` and `np.savez_compressed`).
pub fn read_npz_members(path: &Path, names: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
    let files: Vec<String> = names.iter().map(|n| format!("{n}.npy")).collect();
    let mut found = dia_io::zip_members(path, ".npz (zip) file", |m| files.iter().any(|f| f == m))?;
    Ok(files
        .iter()
        .map(|f| {
            let i = found.iter().position(|(m, _)| m == f)?;
            Some(found.swap_remove(i).1)
        })
        .collect())
}

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
    let (images_key, labels_key) = (
        format!("{}_images", split.name()),
        format!("{}_labels", split.name()),
    );
    let members = read_npz_members(path, &[&images_key, &labels_key])?;
    let (images, labels) = match (&members[0], &members[1]) {
        (Some(i), Some(l)) => (i, l),
        (None, None) => {
            return Err(layout_err(
                path,
                format!(
                    "no arrays {images_key:?} and {labels_key:?} (split {:?} missing)",
                    split.name()
                ),
            ))
        }
        // Half a split is a broken file, not an absent split.
        (Some(_), None) => {
            return Err(format_err(
                path,
                format!("{images_key:?} without {labels_key:?}"),
            ))
        }
        (None, Some(_)) => {
            return Err(format_err(
                path,
                format!("{labels_key:?} without {images_key:?}"),
            ))
        }
    };
    let images = npy::parse(images, path)?;
    let labels = npy::parse(labels, path)?;
    if images.dtype != NpyType::U8 {
        return Err(format_err(
            path,
            format!("{images_key} are {:?}, expected uint8", images.dtype),
        ));
    }
    let (n, h, w, c) = match *images.shape {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        ref d => return Err(format_err(path, format!("{images_key} have shape {d:?}"))),
    };
    let label_values = labels.to_i64()?;
    if label_values.len() != n {
        return Err(format_err(
            path,
            format!(
                "{} labels for {n} images (labels shape {:?})",
                label_values.len(),
                labels.shape
            ),
        ));
    }
    if let Some(bad) = label_values.iter().find(|&&l| l < 0) {
        return Err(format_err(path, format!("negative label {bad}")));
    }
    // One class name is made per label value up to the largest: a label of 9e18 (found by
    // the fuzzer) would ask for that many names.
    if let Some(bad) = label_values.iter().find(|&&l| l >= MAX_CLASSES) {
        return Err(format_err(
            path,
            format!("label {bad} is not below {MAX_CLASSES} (the most classes a dataset may have)"),
        ));
    }
    let labels: Vec<usize> = label_values.iter().map(|&l| l as usize).collect();
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let classes = classes.unwrap_or_else(|| (0..n_classes).map(|i| i.to_string()).collect());
    ArrayDataset::new(path, images.to_u8()?, (n, h, w, c), labels, classes, size)
}
