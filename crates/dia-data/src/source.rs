//! [`DataSource`]: where a dataset lives, as written in an experiment config.
//!
//! ```yaml
//! data:
//!   format: folder            # ROOT/{train,test}/<class>/*.png
//!   root: data/kvasir
//! ```
//! ```yaml
//! data:
//!   format: folder            # ROOT/<class>/*.jpg split by a committed split file
//!   root: data/aptos
//!   split_file: datasets/splits/aptos.csv
//!   classes: [{name: normal, folders: ["0"]}, {name: abnormal, folders: ["1", "2", "3", "4"]}]
//! ```
//! ```yaml
//! data:
//!   format: idx               # train-images-idx3-ubyte[.gz], t10k-..., optional classes.txt
//!   dir: /usr/share/datasets/fashion-mnist
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dataset::{ArrayDataset, Dataset};
use crate::error::{io_err, layout_err, Result};
use crate::folder::{ClassMap, FolderDataset};
use crate::idx::read_idx;
use crate::npz::read_npz_split;
use crate::split::{read_split_file, Split};

/// A dataset location and format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataSource {
    /// An image folder, `ROOT/{train,test}/<class>/`, or `ROOT/<class>/` with a split file.
    Folder {
        /// The dataset root.
        root: PathBuf,
        /// Explicit classes; by default one class per folder, sorted by name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<ClassMap>,
        /// A split file (see [`crate::split`]) for datasets without split folders.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        split_file: Option<PathBuf>,
    },
    /// IDX files (MNIST, Fashion-MNIST) in one folder.
    Idx {
        /// The folder with `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
        dir: PathBuf,
        /// Class names by label; by default `classes.txt` in `dir`, else "0", "1", ...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
    },
    /// A MedMNIST-style `.npz` file.
    Npz {
        /// The file.
        path: PathBuf,
        /// Class names by label; by default "0", "1", ...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
    },
}

impl DataSource {
    /// Opens `split`, decoding images at `size` (H, W) when given, at their own size otherwise.
    pub fn open(&self, split: Split, size: Option<(usize, usize)>) -> Result<Arc<dyn Dataset>> {
        Ok(match self {
            DataSource::Folder {
                root,
                classes,
                split_file: Some(file),
            } => Arc::new(read_split_file(root, file, split, classes.as_ref(), size)?),
            DataSource::Folder {
                root,
                classes,
                split_file: None,
            } => Arc::new(FolderDataset::scan(
                &root.join(split.name()),
                classes.as_ref(),
                size,
            )?),
            DataSource::Idx { dir, classes } => {
                Arc::new(open_idx(dir, split, classes.clone(), size)?)
            }
            DataSource::Npz { path, classes } => {
                Arc::new(read_npz_split(path, split, classes.clone(), size)?)
            }
        })
    }
}

/// Finds `name` or `name.gz` in `dir`.
fn find_idx(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(layout_err(
        &dir.join(name),
        "IDX file not found (raw or .gz)",
    ))
}

/// Opens one split of an IDX folder (MNIST naming: `train` and `t10k`).
pub fn open_idx(
    dir: &Path,
    split: Split,
    classes: Option<Vec<String>>,
    size: Option<(usize, usize)>,
) -> Result<ArrayDataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
        Split::Val => return Err(layout_err(dir, "IDX datasets have no validation split")),
    };
    let images_path = find_idx(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_idx(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    let (n, h, w) = match images.dims[..] {
        [n, h, w] => (n, h, w),
        ref d => {
            return Err(crate::error::format_err(
                &images_path,
                format!("expected images of shape (N, H, W), header says {d:?}"),
            ))
        }
    };
    if labels.dims != [n] {
        return Err(crate::error::format_err(
            &labels_path,
            format!(
                "expected {n} labels to match {}, header says {:?}",
                images_path.display(),
                labels.dims
            ),
        ));
    }
    let labels: Vec<usize> = labels.data.iter().map(|&l| l as usize).collect();
    let classes = match classes {
        Some(c) => c,
        None => {
            let txt = dir.join("classes.txt");
            if txt.is_file() {
                std::fs::read_to_string(&txt)
                    .map_err(io_err(&txt))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            } else {
                let n = labels.iter().max().map_or(0, |m| m + 1);
                (0..n).map(|i| i.to_string()).collect()
            }
        }
    };
    ArrayDataset::new(
        images_path,
        images.data,
        (n, h, w, 1),
        labels,
        classes,
        size,
    )
}

/// Whether `path` is an array dataset: a `.npz` file or a folder holding MNIST-named IDX files.
pub fn is_array_dataset(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "npz")
        || ["train", "t10k"].iter().any(|p| {
            ["", ".gz"]
                .iter()
                .any(|ext| path.join(format!("{p}-images-idx3-ubyte{ext}")).is_file())
        })
}

/// Opens one split of an array dataset ([`is_array_dataset`]) with its own class names and
/// image size.
pub fn open_array(path: &Path, split: Split) -> Result<Box<dyn crate::Dataset>> {
    if path.extension().is_some_and(|e| e == "npz") {
        Ok(Box::new(crate::read_npz_split(path, split, None, None)?))
    } else {
        Ok(Box::new(open_idx(path, split, None, None)?))
    }
}
