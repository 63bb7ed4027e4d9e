//! Safe archive extraction: zip, tar, tar.gz and tar.xz. Every entry is checked before anything
//! is written: an absolute path, a `..` component, or a link (symbolic or hard) that points
//! outside the target refuses the whole archive. Extraction goes into a fresh folder that the
//! caller deletes on error, so a refused archive leaves nothing behind.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// `rel` as a path strictly inside the target: relative, no `..`, no root or prefix.
fn inside(rel: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Whether a link at `entry` (relative) pointing to `target` stays inside the root.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// The kind of archive, from the file name.
pub fn kind(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    [
        (".zip", "zip"),
        (".tar.gz", "tar.gz"),
        (".tgz", "tar.gz"),
        (".tar.xz", "tar.xz"),
        (".tar", "tar"),
    ]
    .into_iter()
    .find(|(ext, _)| n.ends_with(ext))
    .map(|(_, k)| k)
}

/// Extracts `archive` into `dest` (which must not exist yet).
pub fn extract(archive: &Path, dest: &Path) -> Result<()> {
    let name = archive
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dest)?;
    match kind(&name) {
        Some("zip") => extract_zip(archive, dest),
        Some("tar") => extract_tar(std::fs::File::open(archive)?, archive, dest),
        Some("tar.gz") => extract_tar(
            flate2::read::GzDecoder::new(std::fs::File::open(archive)?),
            archive,
            dest,
        ),
        Some("tar.xz") => {
            let mut input = std::io::BufReader::new(std::fs::File::open(archive)?);
            let mut raw = Vec::new();
            lzma_rs::xz_decompress(&mut input, &mut raw).map_err(|e| {
                anyhow::anyhow!("{}: not a valid .xz file: {e:?}", archive.display())
            })?;
            extract_tar(std::io::Cursor::new(raw), archive, dest)
        }
        _ => bail!(
            "{}: unknown archive type (expected .zip, .tar, .tar.gz, .tgz or .tar.xz)",
            archive.display()
        ),
    }
}

fn extract_zip(archive: &Path, dest: &Path) -> Result<()> {
    let file = std::fs::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{}: not a valid zip file", archive.display()))?;
    // Check every entry first.
    for i in 0..zip.len() {
        let e = zip.by_index(i)?;
        let name = e.name()?.to_string();
        if e.enclosed_name().is_none() || inside(Path::new(&name)).is_none() {
            bail!(
                "{}: entry {name:?} escapes the target folder; refusing the archive",
                archive.display()
            );
        }
        if e.is_symlink() {
            bail!(
                "{}: entry {name:?} is a symbolic link; refusing the archive",
                archive.display()
            );
        }
    }
    for i in 0..zip.len() {
        let mut e = zip.by_index(i)?;
        let rel = inside(Path::new(&*e.name()?)).expect("checked above");
        let out = dest.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut f = std::fs::File::create(&out)?;
        std::io::copy(&mut e, &mut f)
            .with_context(|| format!("{}: extracting {}", archive.display(), out.display()))?;
    }
    Ok(())
}

fn extract_tar<R: Read>(reader: R, archive: &Path, dest: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    for entry in tar
        .entries()
        .with_context(|| format!("{}: not a valid tar file", archive.display()))?
    {
        let mut e = entry.with_context(|| format!("{}: corrupt tar entry", archive.display()))?;
        let path = e.path()?.into_owned();
        let Some(rel) = inside(&path) else {
            bail!(
                "{}: entry {:?} escapes the target folder; refusing the archive",
                archive.display(),
                path
            );
        };
        let kind = e.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = e.link_name()?.map(|t| t.into_owned()).unwrap_or_default();
            let ok = if kind.is_hard_link() {
                inside(&target).is_some()
            } else {
                link_stays_inside(&rel, &target)
            };
            if !ok {
                bail!(
                    "{}: link {:?} -> {:?} points outside the target folder; refusing the archive",
                    archive.display(),
                    path,
                    target
                );
            }
            // Links inside the tree are not needed by any dataset: skip them.
            continue;
        }
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let out = dest.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut f = std::fs::File::create(&out)?;
        std::io::copy(&mut e, &mut f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_links_are_checked() {
        assert!(inside(Path::new("a/b.png")).is_some());
        assert!(inside(Path::new("../a")).is_none());
        assert!(inside(Path::new("/etc/passwd")).is_none());
        assert!(inside(Path::new("a/../../b")).is_none());
        assert!(link_stays_inside(Path::new("a/link"), Path::new("b.png")));
        assert!(link_stays_inside(
            Path::new("a/link"),
            Path::new("../c.png")
        ));
        assert!(!link_stays_inside(
            Path::new("a/link"),
            Path::new("../../x")
        ));
        assert!(!link_stays_inside(
            Path::new("link"),
            Path::new("/etc/passwd")
        ));
    }
}
