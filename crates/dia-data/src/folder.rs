//! Image-folder datasets: `ROOT/{train,test}/<class>/*.{png,jpg,jpeg}` (spec §7).
//!
//! Without a class map every class folder is one class and labels follow the sorted folder
//! names, as torchvision's `ImageFolder`; with the reference's convention `0_normal`,
//! `1_abnormal` the normal class is label 0. A [`ClassMap`] names the classes explicitly and
//! may merge folders, e.g. OCT2017's `NORMAL` as `normal` and `CNV, DME, DRUSEN` as `abnormal`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{io_err, layout_err, Error, Result};
use crate::image_io::{decode_rgb, rgb_to_chw};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One class of a [`ClassMap`]: its name and the folders whose images it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// The class name.
    pub name: String,
    /// Folder names under the split folder.
    pub folders: Vec<String>,
}

/// An explicit mapping from class folders to classes; labels follow the list order.
///
/// ```
/// use dia_data::ClassMap;
/// let oct = ClassMap::from_yaml_pairs(&[("normal", &["NORMAL"]), ("abnormal", &["CNV", "DME", "DRUSEN"])]);
/// assert_eq!(oct.label_of("DME"), Some(1));
/// assert_eq!(oct.label_of("NORMAL"), Some(0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassMap(pub Vec<ClassSpec>);

impl ClassMap {
    /// Builds a map from (class name, folders) pairs.
    pub fn from_yaml_pairs(pairs: &[(&str, &[&str])]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(name, folders)| ClassSpec {
                    name: name.to_string(),
                    folders: folders.iter().map(|f| f.to_string()).collect(),
                })
                .collect(),
        )
    }

    /// The label of a folder, if mapped.
    pub fn label_of(&self, folder: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|c| c.folders.iter().any(|f| f == folder))
    }

    /// Class names in label order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|c| c.name.clone()).collect()
    }
}

/// True for files with an image extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether the entry `path` (of type `ft`, not followed) is a folder, following a symbolic
/// link. A link that cannot be followed (dangling, or a loop) is an error, never skipped: a
/// class or an image would otherwise silently go missing.
fn follows_to_dir(path: &Path, ft: std::fs::FileType) -> Result<bool> {
    if !ft.is_symlink() {
        return Ok(ft.is_dir());
    }
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) => Err(layout_err(
            path,
            format!("a symbolic link that cannot be followed (dangling or a loop): {e}"),
        )),
    }
}

/// Sorted subfolders of `dir`, symbolic links to folders included.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let ft = entry.file_type().map_err(io_err(dir))?;
        if follows_to_dir(&entry.path(), ft)? {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Sorted image files directly inside `dir` (symbolic links to files followed). An entry with
/// an image name that is not a readable file (a dangling link, a loop, a folder named `x.png`)
/// is an error.
pub(crate) fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if !is_image(&path) {
            continue;
        }
        let ft = entry.file_type().map_err(io_err(dir))?;
        if follows_to_dir(&path, ft)? {
            return Err(layout_err(&path, "a folder with an image's name"));
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// Every image under `dir`, recursively (symbolic links to folders followed, loops refused),
/// sorted by path. `dir` may also be a single image file.
pub fn find_images(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.is_file() && is_image(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    if !dir.is_dir() {
        return Err(layout_err(
            dir,
            "not a folder or an image file (.png/.jpg/.jpeg)",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    find_into(dir, &mut seen, &mut out)?;
    out.sort();
    Ok(out)
}

fn find_into(
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(io_err(dir))?;
    if !seen.insert(canonical.clone()) {
        return Err(layout_err(
            dir,
            format!(
                "the folder {} is reached twice (a symbolic link loop or a second link to it)",
                canonical.display()
            ),
        ));
    }
    out.extend(image_files(dir)?);
    for sub in subdirs(dir)? {
        find_into(&sub, seen, out)?;
    }
    Ok(())
}

fn folder_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// An image-folder dataset: sample paths with labels, decoded lazily.
#[derive(Clone, Debug)]
pub struct FolderDataset {
    samples: Vec<(PathBuf, usize)>,
    classes: Vec<String>,
    /// The configured size; images are resized to it.
    size: Option<(usize, usize)>,
    /// Without a configured size, the size of the first image, which all must share.
    native: (usize, usize),
}

/// The (H, W) of the first sample, read from its header once (0×0 if unreadable: loading that
/// sample then reports the real error).
fn first_size(samples: &[(PathBuf, usize)]) -> (usize, usize) {
    samples
        .first()
        .and_then(|(p, _)| image::image_dimensions(p).ok())
        .map_or((0, 0), |(w, h)| (h as usize, w as usize))
}

impl FolderDataset {
    /// Scans `dir` (a split folder such as `ROOT/train`, holding one folder per class).
    ///
    /// Errors: `dir` missing (the split does not exist), a class folder without images, a
    /// folder the class map does not know, or a mapped folder that is missing.
    pub fn scan(
        dir: &Path,
        class_map: Option<&ClassMap>,
        size: Option<(usize, usize)>,
    ) -> Result<Self> {
        if !dir.is_dir() {
            return Err(layout_err(dir, "split folder not found"));
        }
        let folders = subdirs(dir)?;
        if folders.is_empty() {
            return Err(layout_err(dir, "no class folders"));
        }
        let classes = match class_map {
            Some(map) => map.names(),
            None => folders.iter().map(|p| folder_name(p)).collect(),
        };
        let mut samples = Vec::new();
        let mut seen = BTreeMap::new();
        for (idx, folder) in folders.iter().enumerate() {
            let name = folder_name(folder);
            let label = match class_map {
                Some(map) => map.label_of(&name).ok_or_else(|| {
                    layout_err(
                        folder,
                        format!(
                            "folder {name:?} is not in the class map ({:?})",
                            map.names()
                        ),
                    )
                })?,
                None => idx,
            };
            let files = image_files(folder)?;
            if files.is_empty() {
                return Err(layout_err(
                    folder,
                    "class folder holds no .png/.jpg/.jpeg image",
                ));
            }
            seen.insert(name, files.len());
            samples.extend(files.into_iter().map(|f| (f, label)));
        }
        if let Some(map) = class_map {
            for spec in &map.0 {
                for f in &spec.folders {
                    if !seen.contains_key(f) {
                        return Err(layout_err(
                            &dir.join(f),
                            format!(
                                "class {:?} expects this folder, which is missing",
                                spec.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Self {
            native: first_size(&samples),
            samples,
            classes,
            size,
        })
    }

    /// A dataset from explicit (path, label) pairs, e.g. read from a split file.
    pub fn from_samples(
        samples: Vec<(PathBuf, usize)>,
        classes: Vec<String>,
        size: Option<(usize, usize)>,
    ) -> Result<Self> {
        if let Some((p, l)) = samples.iter().find(|(_, l)| *l >= classes.len()) {
            return Err(Error::Invalid(format!(
                "{}: label {l} but only {} classes",
                p.display(),
                classes.len()
            )));
        }
        Ok(Self {
            native: first_size(&samples),
            samples,
            classes,
            size,
        })
    }

    /// The (path, label) pairs.
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }
}

impl Dataset for FolderDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, i: usize) -> usize {
        self.samples[i].1
    }
    fn image_size(&self) -> (usize, usize) {
        self.size.unwrap_or(self.native)
    }
    fn load(&self, i: usize) -> Result<Vec<f32>> {
        let path = &self.samples[i].0;
        let img = decode_rgb(path)?;
        let got = (img.height() as usize, img.width() as usize);
        if self.size.is_none() && got != self.native {
            return Err(crate::error::format_err(
                path,
                format!(
                    "image is {}x{} but the dataset's images are {}x{}; set an image size to resize",
                    got.0, got.1, self.native.0, self.native.1
                ),
            ));
        }
        Ok(rgb_to_chw(&img, self.size))
    }
    fn load_native(&self, i: usize) -> Result<(Vec<f32>, (usize, usize))> {
        let img = decode_rgb(&self.samples[i].0)?;
        let hw = (img.height() as usize, img.width() as usize);
        Ok((rgb_to_chw(&img, None), hw))
    }
    fn source(&self, i: usize) -> String {
        self.samples[i].0.display().to_string()
    }
}
