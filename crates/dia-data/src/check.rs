//! `dia data check`: class counts, image sizes and every unreadable file of an image folder.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{layout_err, Result};
use crate::folder::{image_files, subdirs};
use crate::image_io::decode_rgb;

/// The images of one class folder.
#[derive(Clone, Debug, Default)]
pub struct ClassReport {
    /// Folder name.
    pub name: String,
    /// Number of readable images.
    pub count: usize,
    /// Readable images per (width, height).
    pub sizes: BTreeMap<(u32, u32), usize>,
}

/// The classes of one split folder.
#[derive(Clone, Debug, Default)]
pub struct SplitReport {
    /// `train`, `test`, ... or empty when the root holds class folders directly.
    pub name: String,
    /// Per-class reports.
    pub classes: Vec<ClassReport>,
}

/// A file or folder that cannot be used, and why.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The file or folder.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// The result of [`check_folder`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// The folder checked.
    pub root: PathBuf,
    /// Per-split reports.
    pub splits: Vec<SplitReport>,
    /// Unreadable files and empty class folders.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Decodes every image under `root`, which is either `ROOT/{train,test,...}/<class>/` or
/// `ROOT/<class>/`. Unreadable files and class folders without images are collected as
/// problems, not returned as errors; only an unreadable `root` itself is an error.
pub fn check_folder(root: &Path) -> Result<CheckReport> {
    if !root.is_dir() {
        return Err(layout_err(root, "not a folder"));
    }
    let top = subdirs(root)?;
    let is_split = |p: &PathBuf| {
        matches!(
            p.file_name().and_then(|n| n.to_str()),
            Some("train" | "test" | "val")
        )
    };
    let split_dirs: Vec<(String, PathBuf)> = if top.iter().any(is_split) {
        top.iter()
            .filter(|p| is_split(p))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    p.clone(),
                )
            })
            .collect()
    } else {
        vec![(String::new(), root.to_path_buf())]
    };
    let mut report = CheckReport {
        root: root.to_path_buf(),
        ..Default::default()
    };
    for (name, dir) in split_dirs {
        let mut split = SplitReport {
            name,
            classes: Vec::new(),
        };
        let classes = subdirs(&dir)?;
        if classes.is_empty() {
            report.problems.push(Problem {
                path: dir.clone(),
                message: "no class folders".into(),
            });
        }
        for class_dir in classes {
            let files = image_files(&class_dir)?;
            let mut class = ClassReport {
                name: class_dir
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                ..Default::default()
            };
            if files.is_empty() {
                report.problems.push(Problem {
                    path: class_dir.clone(),
                    message: "class folder holds no .png/.jpg/.jpeg image".into(),
                });
            }
            let decoded: Vec<std::result::Result<(u32, u32), Problem>> = files
                .par_iter()
                .map(|f| {
                    decode_rgb(f)
                        .map(|img| img.dimensions())
                        .map_err(|e| Problem {
                            path: f.clone(),
                            message: error_message(&e),
                        })
                })
                .collect();
            for d in decoded {
                match d {
                    Ok(size) => {
                        class.count += 1;
                        *class.sizes.entry(size).or_default() += 1;
                    }
                    Err(p) => report.problems.push(p),
                }
            }
            split.classes.push(class);
        }
        report.splits.push(split);
    }
    Ok(report)
}

/// The message of an error without the path prefix (the report prints the path itself).
fn error_message(e: &crate::Error) -> String {
    match e {
        crate::Error::Format { msg, .. } | crate::Error::Layout { msg, .. } => msg.clone(),
        crate::Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.root.display())?;
        for split in &self.splits {
            let label = if split.name.is_empty() {
                "(no split)"
            } else {
                &split.name
            };
            let total: usize = split.classes.iter().map(|c| c.count).sum();
            writeln!(f, "  {label}: {total} images")?;
            for c in &split.classes {
                let sizes: Vec<String> = c
                    .sizes
                    .iter()
                    .take(4)
                    .map(|((w, h), n)| format!("{w}x{h} ({n})"))
                    .collect();
                let more = if c.sizes.len() > 4 {
                    format!(", +{} more sizes", c.sizes.len() - 4)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "    {:<24} {:>7}  {}{more}",
                    c.name,
                    c.count,
                    sizes.join(", ")
                )?;
            }
        }
        if self.problems.is_empty() {
            write!(f, "no problems found")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {}: {}", p.path.display(), p.message)?;
            }
            Ok(())
        }
    }
}

/// The splits of an array dataset (an IDX folder or a `.npz` file) as [`check_dataset`]
/// found them.
#[derive(Debug)]
pub struct ArrayCheck {
    /// The file or folder checked.
    pub root: PathBuf,
    /// Per split: its name and either (images, (height, width), count per class) or why it is
    /// absent or unreadable.
    pub splits: Vec<(String, std::result::Result<ArraySplit, String>)>,
    /// Whether every problem is only an absent optional split.
    ok: bool,
}

/// One readable split of an array dataset.
#[derive(Debug)]
pub struct ArraySplit {
    /// (height, width).
    pub size: (usize, usize),
    /// (class, images) in label order.
    pub counts: Vec<(String, usize)>,
}

/// What `dia data check` reports: an image folder or an array dataset.
#[derive(Debug)]
pub enum DatasetCheck {
    /// An image folder.
    Folder(CheckReport),
    /// An IDX folder or a `.npz` file.
    Arrays(ArrayCheck),
}

impl DatasetCheck {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        match self {
            Self::Folder(r) => r.is_ok(),
            Self::Arrays(a) => a.ok,
        }
    }
}

/// Checks a dataset as `dia data check` does: an image folder is decoded file by file
/// ([`check_folder`]); an IDX folder or a `.npz` file is validated by its reader (header,
/// sizes, labels) for every split. The train and test splits must be there; val may be
/// absent; half a split (images without labels) is a problem.
pub fn check_dataset(path: &Path) -> Result<DatasetCheck> {
    if !crate::source::is_array_dataset(path) {
        return Ok(DatasetCheck::Folder(check_folder(path)?));
    }
    let mut ok = true;
    let mut splits = Vec::new();
    for split in [crate::Split::Train, crate::Split::Val, crate::Split::Test] {
        let found = match crate::source::open_array(path, split) {
            Ok(ds) => {
                let labels = ds.labels();
                let counts = ds
                    .classes()
                    .iter()
                    .enumerate()
                    .map(|(c, class)| (class.clone(), labels.iter().filter(|&&l| l == c).count()))
                    .collect();
                Ok(ArraySplit {
                    size: ds.image_size(),
                    counts,
                })
            }
            Err(crate::Error::Layout { msg, .. }) => {
                ok &= split == crate::Split::Val;
                Err(format!("absent ({msg})"))
            }
            Err(e) => {
                ok = false;
                Err(e.to_string())
            }
        };
        splits.push((split.name().to_string(), found));
    }
    Ok(DatasetCheck::Arrays(ArrayCheck {
        root: path.to_path_buf(),
        splits,
        ok,
    }))
}

impl fmt::Display for DatasetCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self {
            Self::Folder(r) => return write!(f, "{r}"),
            Self::Arrays(a) => a,
        };
        writeln!(f, "{}", a.root.display())?;
        for (name, split) in &a.splits {
            match split {
                Ok(s) => {
                    let n: usize = s.counts.iter().map(|c| c.1).sum();
                    writeln!(f, "  {name}: {n} images of {}x{}", s.size.1, s.size.0)?;
                    for (class, count) in &s.counts {
                        writeln!(f, "    {class:<24} {count:>7}")?;
                    }
                }
                Err(msg) => writeln!(f, "  {name}: {msg}")?,
            }
        }
        write!(
            f,
            "{}",
            if a.ok {
                "no problems found"
            } else {
                "problems found"
            }
        )
    }
}
