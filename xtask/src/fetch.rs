//! `cargo xtask fetch-datasets`: download, verify, extract and lay out a dataset.
//!
//! Downloads go to `DIR/.downloads/` (a `.part` file while in progress, so a second run
//! resumes it). Each file is checked against the manifest's size and hash before anything is
//! extracted. Extraction and layout happen in `DIR/.<name>.tmp/`, renamed to `DIR/<name>/`
//! only when complete, with a `.dia-dataset.json` stamp recording what was verified: a dataset
//! with a stamp is not fetched again, and an interrupted run leaves no half-built dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::download::{download, verify};
use crate::extract::{extract, kind};
use crate::manifest::{Format, Manifest};

/// The stamp of a finished dataset.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    name: String,
    /// sha256 of every source file.
    sha256: BTreeMap<String, String>,
}

const STAMP: &str = ".dia-dataset.json";

/// Options of one fetch.
pub struct FetchOptions<'a> {
    /// The data folder (`data`).
    pub dir: &'a Path,
    /// A local file to use instead of downloading (single-source datasets, e.g. Kaggle).
    pub from: Option<&'a Path>,
    /// Where split files live (`datasets/splits`).
    pub splits: &'a Path,
}

/// Fetches one dataset; returns its folder.
pub fn fetch(m: &Manifest, opts: &FetchOptions) -> Result<PathBuf> {
    let target = opts.dir.join(&m.name);
    if target.join(STAMP).is_file() {
        println!(
            "{}: already fetched and verified ({})",
            m.name,
            target.display()
        );
        return Ok(target);
    }
    if target.exists() {
        bail!(
            "{} exists but was not made by fetch-datasets (no {STAMP}); move it away first",
            target.display()
        );
    }
    let downloads = opts.dir.join(".downloads");
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("creating {}", downloads.display()))?;

    // 1. Every source file, verified.
    let mut files = Vec::new();
    let mut sha = BTreeMap::new();
    for src in &m.sources {
        let dest = downloads.join(&src.file);
        let local = match (opts.from, &m.local_path) {
            (Some(f), _) if m.sources.len() == 1 => Some(f.to_path_buf()),
            (Some(_), _) => bail!(
                "--from takes a file for single-file datasets; {} has {}",
                m.name,
                m.sources.len()
            ),
            (None, Some(dir)) if dir.join(&src.file).is_file() => Some(dir.join(&src.file)),
            _ => None,
        };
        if let Some(path) = local {
            if !path.is_file() {
                bail!("{}: no such file", path.display());
            }
            println!("{}: using {}", m.name, path.display());
            std::fs::copy(&path, &dest).with_context(|| format!("copying {}", path.display()))?;
        } else if !dest.is_file() {
            if src.urls.is_empty() {
                bail!(
                    "{} needs {} from an account-only source:\n  {}\nthen run: cargo xtask fetch-datasets {} --from PATH/{}",
                    m.name,
                    src.file,
                    src.manual.as_deref().unwrap_or("see the manifest"),
                    m.name,
                    src.file
                );
            }
            let part = downloads.join(format!("{}.part", src.file));
            let mut last = None;
            for url in &src.urls {
                println!("{}: downloading {url}", m.name);
                match download(url, &part, &dest, src.size) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        eprintln!("{}: {e:#}", m.name);
                        last = Some(e);
                    }
                }
            }
            if let Some(e) = last {
                return Err(e.context(format!("{}: every URL failed", m.name)));
            }
        }
        match verify(&dest, src) {
            Ok(None) => println!("{}: {} verified", m.name, src.file),
            Ok(Some(h)) => println!(
                "{}: {} is UNVERIFIED (the manifest has no hash); its sha256 is {h}: add it to datasets/{}.yaml",
                m.name, src.file, m.name
            ),
            Err(e) => {
                // A bad file must not be mistaken for a good one by the next run.
                let _ = std::fs::remove_file(&dest);
                return Err(e.context(format!("{}: verification failed; nothing was extracted", m.name)));
            }
        }
        sha.insert(src.file.clone(), crate::download::hashes(&dest)?.0);
        files.push(dest);
    }

    // 2. Build the dataset in a temporary folder, then rename.
    let work = opts.dir.join(format!(".{}.tmp", m.name));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let built = build(m, &files, &work, opts.splits);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    let out = work.join("out");
    let stamp = Stamp {
        name: m.name.clone(),
        sha256: sha,
    };
    std::fs::write(out.join(STAMP), serde_json::to_string_pretty(&stamp)?)?;
    std::fs::rename(&out, &target)
        .with_context(|| format!("renaming into {}", target.display()))?;
    std::fs::remove_dir_all(&work)?;
    println!("{}: ready in {}", m.name, target.display());
    Ok(target)
}

fn build(m: &Manifest, files: &[PathBuf], work: &Path, splits: &Path) -> Result<()> {
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    match m.format {
        Format::Npz | Format::Idx => {
            for f in files {
                std::fs::copy(f, out.join(f.file_name().expect("a file")))?;
            }
            if let Some(classes) = &m.classes {
                std::fs::write(out.join("classes.txt"), classes.join("\n") + "\n")?;
            }
            Ok(())
        }
        Format::CifarBinary => {
            let raw = work.join("raw");
            for f in files {
                extract(f, &raw)?;
            }
            cifar_to_folders(&raw, &out)
        }
        Format::Folders => {
            let raw = work.join("raw");
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if kind(&name).is_some() {
                    extract(f, &raw)?;
                } else {
                    std::fs::create_dir_all(&raw)?;
                    std::fs::copy(f, raw.join(&name))?;
                }
            }
            lay_out(m, &raw, &out, splits)
        }
    }
}

/// Moves the images of `raw` into `out/<split>/<class>/` by the manifest's rules; images
/// without a split go through the split file `splits/<name>.csv` (created from the recipe
/// when absent).
fn lay_out(m: &Manifest, raw: &Path, out: &Path, splits: &Path) -> Result<()> {
    let mut unsplit = false;
    let pool = out.join(".all");
    if let Some(csv) = &m.csv_layout {
        let path = raw.join(&csv.file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: the archive has no {}", m.name, csv.file))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .with_context(|| format!("{}: no column {name:?} in {}", m.name, csv.file))
        };
        let (id_col, label_col) = (col(&csv.id_column)?, col(&csv.label_column)?);
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let (Some(id), Some(label)) = (cells.get(id_col), cells.get(label_col)) else {
                bail!("{}: malformed line {line:?} in {}", m.name, csv.file);
            };
            let Some(class) = csv.classes.get(*label) else {
                bail!(
                    "{}: label {label:?} of {id} is not in csv_layout.classes",
                    m.name
                );
            };
            let from = raw.join(&csv.images).join(format!("{id}{}", csv.ext));
            if inside_name(id).is_none() || !from.is_file() {
                bail!("{}: image {id:?} listed in {} is missing", m.name, csv.file);
            }
            let dir = pool.join(class);
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(&from, dir.join(format!("{id}{}", csv.ext)))?;
            unsplit = true;
        }
    }
    for rule in &m.layout {
        let src = raw.join(&rule.from);
        if !src.is_dir() {
            bail!(
                "{}: the archive has no folder {:?} (layout rule)",
                m.name,
                rule.from
            );
        }
        let images = dia_data::find_images(&src)?;
        if images.is_empty() {
            bail!("{}: no image under {:?}", m.name, rule.from);
        }
        let dir = match &rule.split {
            Some(s) => out.join(s).join(&rule.class),
            None => {
                unsplit = true;
                pool.join(&rule.class)
            }
        };
        std::fs::create_dir_all(&dir)?;
        for img in images {
            // Flatten nested folders into the file name so that names stay unique.
            let rel = img
                .strip_prefix(&src)
                .unwrap_or(&img)
                .to_string_lossy()
                .replace('/', "__");
            std::fs::rename(&img, dir.join(rel))?;
        }
    }
    if !unsplit {
        return Ok(());
    }
    let recipe = m.split.as_ref().expect("checked by the manifest");
    let split_file = splits.join(format!("{}.csv", m.name));
    if !split_file.is_file() {
        std::fs::create_dir_all(splits)?;
        let counts = dia_data::write_split_file(&pool, recipe, &split_file)?;
        println!(
            "{}: wrote the split file {} (train {}, val {}, test {}); commit it so others get the same split",
            m.name,
            split_file.display(),
            counts[0],
            counts[1],
            counts[2]
        );
    }
    let text = std::fs::read_to_string(&split_file)?;
    for line in text.lines().skip_while(|l| l.starts_with('#')).skip(1) {
        let mut parts = line.splitn(3, ',');
        let (Some(split), Some(class), Some(rel)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{}: malformed line {line:?}", split_file.display());
        };
        let from = pool.join(rel);
        if !from.is_file() {
            bail!(
                "{}: lists {rel}, which the archive does not have",
                split_file.display()
            );
        }
        let dir = out.join(split).join(class);
        std::fs::create_dir_all(&dir)?;
        std::fs::rename(
            &from,
            dir.join(Path::new(rel).file_name().expect("a file name")),
        )?;
    }
    let left = dia_data::find_images(&pool)?;
    if !left.is_empty() {
        bail!(
            "{}: {} images of the archive are not in {} (e.g. {}); delete the split file to make a new one",
            m.name,
            left.len(),
            split_file.display(),
            left[0].display()
        );
    }
    std::fs::remove_dir_all(&pool)?;
    Ok(())
}

/// `id` when it is a plain file name (no separators, not `.`/`..`).
fn inside_name(id: &str) -> Option<&str> {
    (!id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\'])).then_some(id)
}

/// Converts the CIFAR-10 binary batches (`cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`,
/// records of 1 label byte + 3072 bytes R, G, B planes) to PNG folders.
fn cifar_to_folders(raw: &Path, out: &Path) -> Result<()> {
    let dir = raw.join("cifar-10-batches-bin");
    let names: Vec<String> = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .context("cifar-10-batches-bin/batches.meta.txt missing")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != 10 {
        bail!(
            "batches.meta.txt lists {} classes, expected 10",
            names.len()
        );
    }
    let batches = (1..=5)
        .map(|i| (format!("data_batch_{i}.bin"), "train"))
        .chain(std::iter::once(("test_batch.bin".to_string(), "test")));
    for (file, split) in batches {
        let bytes = std::fs::read(dir.join(&file)).with_context(|| format!("{file} missing"))?;
        if bytes.len() % 3073 != 0 {
            bail!(
                "{file}: {} bytes is not a whole number of 3073-byte records",
                bytes.len()
            );
        }
        for (i, rec) in bytes.chunks(3073).enumerate() {
            let label = rec[0] as usize;
            let class = names
                .get(label)
                .with_context(|| format!("{file}: label {label} out of range"))?;
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let p = (y * 32 + x) as usize;
                image::Rgb([rec[1 + p], rec[1 + 1024 + p], rec[1 + 2048 + p]])
            });
            let d = out.join(split).join(class);
            std::fs::create_dir_all(&d)?;
            img.save(d.join(format!("{}_{i:05}.png", file.trim_end_matches(".bin"))))?;
        }
    }
    Ok(())
}
