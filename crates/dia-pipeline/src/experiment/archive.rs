//! A grid's records without its weights (issue #16): what a reproduction commits so that its
//! tables can be read back and its unfinished cells continued on another machine or in another
//! session. Every file of the grid's folder is copied except weights and checkpoints
//! (`*.safetensors`), the per-image scores (`scores.csv`, about 1 MB per cell of 10,000 test
//! images; `eval/report.json` holds every AUROC the tables use), locks and temporary files. [`collect`](super::collect) and
//! [`ddpm_summaries`](super::ddpm_summaries) read such a copy as they read the grid itself (a
//! DDPM counts as finished by its `metrics.csv`,
//! [`dia_diffusion::train::is_finished_by_metrics`]); a diffusion cell still to run needs its
//! DDPM's weights, so those are retrained where they are missing.

use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};

/// What [`archive`] copied and left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Files copied.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The weights, checkpoints and score files left out, relative to the grid's folder.
    pub left_out: Vec<PathBuf>,
}

/// Whether `name` is a file the archive keeps: not weights, not per-image scores, not a lock,
/// not a temporary file.
fn kept(name: &str) -> bool {
    !(name.ends_with(".safetensors")
        || name == "scores.csv"
        || name == ".dia.lock"
        || name.ends_with(".tmp"))
}

/// Copies the records of the grid in `out` into `dest` (created; files already there are
/// replaced, each written to a temporary name and renamed). `dest` may not lie inside `out`.
pub fn archive(out: &Path, dest: &Path) -> Result<ArchiveSummary> {
    let src = out.canonicalize().map_err(io_err(out))?;
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    let dst = dest.canonicalize().map_err(io_err(dest))?;
    if dst.starts_with(&src) {
        return Err(Error::Config(format!(
            "{}: the archive may not lie inside the grid's folder {}",
            dest.display(),
            out.display()
        )));
    }
    let mut summary = ArchiveSummary::default();
    copy_dir(&src, &dst, Path::new(""), &mut summary)?;
    Ok(summary)
}

fn copy_dir(src: &Path, dst: &Path, rel: &Path, summary: &mut ArchiveSummary) -> Result<()> {
    let from = src.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&from)
        .map_err(io_err(&from))?
        .collect::<std::io::Result<_>>()
        .map_err(io_err(&from))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        let path = src.join(&rel);
        let kind = e.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            std::fs::create_dir_all(dst.join(&rel)).map_err(io_err(&dst.join(&rel)))?;
            copy_dir(src, dst, &rel, summary)?;
        } else if !kind.is_file() {
            continue; // links and the like are not records
        } else if kept(&e.file_name().to_string_lossy()) {
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            dia_io::atomic::write_atomic(&dst.join(&rel), |f| {
                std::io::Write::write_all(f, &bytes)
            })?;
            summary.files += 1;
            summary.bytes += bytes.len() as u64;
        } else if e.file_name() != ".dia.lock" {
            summary.left_out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_locks_and_temporary_files_are_left_out() {
        assert!(kept("metrics.csv") && kept("report.json") && kept("loss.png"));
        assert!(!kept("model.safetensors") && !kept("checkpoint.safetensors"));
        assert!(!kept(".dia.lock") && !kept("report.json.tmp") && !kept("scores.csv"));
    }

    #[test]
    fn an_archive_inside_the_grid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        let e = archive(dir.path(), &dir.path().join("records")).unwrap_err();
        assert!(e.to_string().contains("may not lie inside"), "{e}");
    }
}
