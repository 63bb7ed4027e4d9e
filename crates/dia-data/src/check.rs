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
