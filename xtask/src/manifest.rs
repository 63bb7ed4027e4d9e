//! Dataset manifests (`datasets/<name>.yaml`): where a dataset comes from, how to verify it,
//! and how its archive maps onto `data/<name>/{train,test}/<class>/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dia_data::SplitRecipe;
use serde::{Deserialize, Serialize};

/// What the fetched dataset looks like on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Image folders `train|test/<class>/` (built from the archive by `layout`).
    Folders,
    /// A MedMNIST `.npz` file, used as is.
    Npz,
    /// IDX files (`train-images-idx3-ubyte.gz`, ...), used as is.
    Idx,
    /// The CIFAR-10 binary version, converted to PNG folders `train|test/<class>/`.
    #[serde(rename = "cifar-binary")]
    CifarBinary,
}

/// Labels from a CSV file (APTOS): image `images/<id><ext>` gets the class that `classes`
/// maps its label to; splits come from the recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvLayout {
    /// The CSV inside the archive.
    pub file: String,
    /// Folder of the images inside the archive.
    pub images: String,
    /// Image file extension, with the dot.
    pub ext: String,
    /// Column of the image id.
    pub id_column: String,
    /// Column of the label.
    pub label_column: String,
    /// Label value → class folder.
    pub classes: std::collections::BTreeMap<String, String>,
}

/// One file to download.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The file name it is saved under.
    pub file: String,
    /// Download URLs, tried in order (mirrors after the first).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Size in bytes, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// SHA-256 (hex), when established.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The publisher's MD5 (hex), where that is all there is.
    #[serde(default)]
    pub md5: Option<String>,
    /// SHA-256 of other known-good copies (e.g. Debian's re-gzipped Fashion-MNIST).
    #[serde(default)]
    pub alt_sha256: Vec<String>,
    /// Set when the file needs an account (Kaggle): how to get it; the file is then taken from
    /// `--from`.
    #[serde(default)]
    pub manual: Option<String>,
}

/// Where files of the extracted archive go: every image under `from` (a path prefix inside
/// the archive, `/`-separated) becomes class `class` of split `split` (`train`, `test`, or
/// absent: assigned by the manifest's split recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Path prefix inside the extracted archive.
    pub from: String,
    /// Target class folder.
    pub class: String,
    /// Target split; `None` when the recipe decides.
    #[serde(default)]
    pub split: Option<String>,
}

/// A dataset manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name (the folder under `data/`).
    pub name: String,
    /// Human title.
    pub title: String,
    /// Where it is described.
    pub homepage: String,
    /// Licence, as the publisher states it.
    pub licence: String,
    /// How to cite it.
    pub citation: String,
    /// The normal class of the paper's protocol, and a word on it.
    pub normal: String,
    /// On-disk format after fetching.
    pub format: Format,
    /// Files to download.
    pub sources: Vec<Source>,
    /// Folder layout rules (`format: folders`).
    #[serde(default)]
    pub layout: Vec<Rule>,
    /// Labels from a CSV instead of folders (`format: folders`).
    #[serde(default)]
    pub csv_layout: Option<CsvLayout>,
    /// Split recipe for sets without an official test split; the split file is
    /// `datasets/splits/<name>.csv`.
    #[serde(default)]
    pub split: Option<SplitRecipe>,
    /// A local copy that replaces the download when present (Debian's Fashion-MNIST).
    #[serde(default)]
    pub local_path: Option<PathBuf>,
    /// Class names by label, written to `classes.txt` (IDX and NPZ sets).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Notes for people (sizes, counts, quirks).
    #[serde(default)]
    pub notes: Option<String>,
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m: Manifest = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: invalid manifest", path.display()))?;
        m.check()
            .with_context(|| format!("{}: invalid manifest", path.display()))?;
        Ok(m)
    }

    fn check(&self) -> Result<()> {
        let ok_name = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !ok_name(&self.name) {
            bail!(
                "name {:?} must be letters, digits, '-', '_' or '.'",
                self.name
            );
        }
        if self.sources.is_empty() {
            bail!("no sources");
        }
        for s in &self.sources {
            if !ok_name(&s.file) {
                bail!("source file name {:?} must be a plain file name", s.file);
            }
            if s.urls.is_empty() && s.manual.is_none() {
                bail!("source {} has neither urls nor manual instructions", s.file);
            }
            let hex = |h: &Option<String>, n: usize| {
                h.as_ref()
                    .is_none_or(|h| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit()))
            };
            if !hex(&s.sha256, 64) || !hex(&s.md5, 32) {
                bail!("source {}: sha256 must be 64 and md5 32 hex digits", s.file);
            }
        }
        if self.format == Format::Folders && self.layout.is_empty() && self.csv_layout.is_none() {
            bail!("format folders needs layout rules or a csv_layout");
        }
        if self.csv_layout.is_some() && self.split.is_none() {
            bail!("csv_layout needs a split recipe");
        }
        for r in &self.layout {
            if r.from.split('/').any(|c| c == "..") || r.from.starts_with('/') {
                bail!(
                    "layout rule {:?} must be a relative path inside the archive",
                    r.from
                );
            }
            match r.split.as_deref() {
                Some("train" | "test" | "val") => {}
                None if self.split.is_some() => {}
                None => bail!(
                    "layout rule {:?} has no split and the manifest no split recipe",
                    r.from
                ),
                Some(s) => bail!("layout rule {:?}: unknown split {s:?}", r.from),
            }
            if !ok_name(&r.class) {
                bail!(
                    "layout rule {:?}: class {:?} must be a plain folder name",
                    r.from,
                    r.class
                );
            }
        }
        Ok(())
    }
}

/// Every manifest in `dir`, sorted by name.
pub fn all(dir: &Path) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(Manifest::read(&path)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
