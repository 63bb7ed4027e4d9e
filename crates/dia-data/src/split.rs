//! Splits: which part of a dataset (train, val, test), seeded stratified splits for datasets
//! that ship no test split, and split files that make such a split reproducible.
//!
//! A split file is a small CSV next to the data, one line per image:
//!
//! ```text
//! # dia split file: seed=0 val=0 test=0.2
//! split,class,path
//! train,normal,normal/0001.png
//! test,polyps,polyps/0042.jpg
//! ```
//!
//! `class` is the class folder and `path` is relative to the dataset root.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{format_err, io_err, layout_err, Error, Result};
use crate::folder::{ClassMap, FolderDataset};
use dia_io::write_atomic;

/// A part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images (model selection without touching the test set).
    Val,
    /// Test images.
    Test,
}

impl Split {
    /// `train`, `val` or `test`.
    pub fn name(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(Split::Train),
            "val" => Some(Split::Val),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// How to split a dataset without an official test split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRecipe {
    /// Fraction of each class that goes to the test split.
    pub test: f64,
    /// Fraction of each class that goes to the validation split.
    #[serde(default)]
    pub val: f64,
    /// Seed of the shuffle.
    pub seed: u64,
}

/// Assigns every sample to a split, stratified by label: within each class the indices are
/// shuffled with a ChaCha8 generator seeded by `recipe.seed`, then `round(n·test)` go to test,
/// `round(n·val)` to val and the rest to train.
///
/// ```
/// use dia_data::{stratified_split, Split, SplitRecipe};
/// let labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
/// let s = stratified_split(&labels, &SplitRecipe { test: 0.4, val: 0.0, seed: 7 })?;
/// assert_eq!(s.iter().filter(|&&x| x == Split::Test).count(), 4);
/// # Ok::<(), dia_data::Error>(())
/// ```
pub fn stratified_split(labels: &[usize], recipe: &SplitRecipe) -> Result<Vec<Split>> {
    let ok = |f: f64| (0.0..1.0).contains(&f);
    if !ok(recipe.test) || !ok(recipe.val) || recipe.test + recipe.val >= 1.0 {
        return Err(Error::Invalid(format!(
            "split fractions test={} val={} must be in [0, 1) and sum to less than 1",
            recipe.test, recipe.val
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed);
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut out = vec![Split::Train; labels.len()];
    for class in 0..n_classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        let n = idx.len() as f64;
        let n_test = (n * recipe.test).round() as usize;
        let n_val = ((n * recipe.val).round() as usize).min(idx.len() - n_test);
        for &i in &idx[..n_test] {
            out[i] = Split::Test;
        }
        for &i in &idx[n_test..n_test + n_val] {
            out[i] = Split::Val;
        }
    }
    Ok(out)
}

/// Splits the class folders of `root` (`ROOT/<class>/*.png`) with `recipe` and writes the
/// split file `out` (atomically). Returns the number of images per split (train, val, test).
pub fn write_split_file(root: &Path, recipe: &SplitRecipe, out: &Path) -> Result<[usize; 3]> {
    let all = FolderDataset::scan(root, None, None)?;
    let labels: Vec<usize> = all.samples().iter().map(|(_, l)| *l).collect();
    let assignment = stratified_split(&labels, recipe)?;
    let mut text = format!(
        "# dia split file: seed={} val={} test={}\nsplit,class,path\n",
        recipe.seed, recipe.val, recipe.test
    );
    let mut counts = [0usize; 3];
    for ((path, _), split) in all.samples().iter().zip(&assignment) {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel = rel.to_string_lossy();
        if rel.contains('\n') {
            return Err(format_err(path, "file name contains a newline"));
        }
        let class = rel.split('/').next().unwrap_or_default();
        text.push_str(&format!("{},{class},{rel}\n", split.name()));
        counts[*split as usize] += 1;
    }
    write_atomic(out, |f| f.write_all(text.as_bytes()))?;
    Ok(counts)
}

/// Reads the samples of `split` from a split file; paths are relative to `root`. Every listed
/// file must exist; a split with no entry is an error.
pub fn read_split_file(
    root: &Path,
    split_file: &Path,
    split: Split,
    class_map: Option<&ClassMap>,
    size: Option<(usize, usize)>,
) -> Result<FolderDataset> {
    let text = std::fs::read_to_string(split_file).map_err(io_err(split_file))?;
    let mut rows: Vec<(Split, String, PathBuf)> = Vec::new();
    let mut header_seen = false;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !header_seen {
            if line != "split,class,path" {
                return Err(format_err(
                    split_file,
                    format!(
                        "line {}: expected the header \"split,class,path\"",
                        lineno + 1
                    ),
                ));
            }
            header_seen = true;
            continue;
        }
        let mut parts = line.splitn(3, ',');
        let (s, class, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(s), Some(c), Some(p)) if !p.is_empty() => (s, c, p),
            _ => {
                return Err(format_err(
                    split_file,
                    format!("line {}: expected split,class,path", lineno + 1),
                ))
            }
        };
        let s = Split::parse(s).ok_or_else(|| {
            format_err(
                split_file,
                format!("line {}: unknown split {s:?}", lineno + 1),
            )
        })?;
        let rel = Path::new(path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format_err(
                split_file,
                format!("line {}: path {path:?} leaves the dataset root", lineno + 1),
            ));
        }
        rows.push((s, class.to_string(), root.join(rel)));
    }
    // Classes: the class map, or every folder named in the file, sorted (as ImageFolder).
    let classes: Vec<String> = match class_map {
        Some(m) => m.names(),
        None => {
            let mut c: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let mut samples = Vec::new();
    for (_, class, path) in rows.into_iter().filter(|r| r.0 == split) {
        let label = match class_map {
            Some(m) => m.label_of(&class),
            None => classes.iter().position(|c| *c == class),
        }
        .ok_or_else(|| {
            format_err(
                split_file,
                format!("class {class:?} is not in the class map"),
            )
        })?;
        if !path.is_file() {
            return Err(layout_err(
                &path,
                format!("listed in {} but missing", split_file.display()),
            ));
        }
        samples.push((path, label));
    }
    if samples.is_empty() {
        return Err(layout_err(
            split_file,
            format!("the split file lists no {:?} image", split.name()),
        ));
    }
    FolderDataset::from_samples(samples, classes, size)
}
