//! Chores of a training run directory shared by `dia train` and `dia train-ddpm`: a metrics
//! CSV whose first column counts progress (epoch or step), trimmed back to the last checkpoint
//! on resume, and the temporary files an interrupted [`write_atomic`] leaves behind.

use std::io::Write;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{io_err, Result};

/// Deletes the `*.tmp` files in `dir` (what a killed [`write_atomic`] leaves behind).
pub fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The data rows of the metrics CSV at `path` whose first column is at most `upto`: the rows
/// the last checkpoint covers (the header is dropped).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("metrics.csv");
/// dia_io::run::write_metrics(&p, "step,loss", &["1,0.9".into(), "2,0.8".into(), "3,0.7".into()])?;
/// assert_eq!(dia_io::run::metrics_upto(&p, 2)?, ["1,0.9", "2,0.8"]);
/// # Ok::<(), dia_io::Error>(())
/// ```
pub fn metrics_upto(path: &Path, upto: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|e| e.parse::<usize>().ok())
                .is_some_and(|e| e <= upto)
        })
        .map(String::from)
        .collect())
}

/// Writes the metrics CSV (`header`, then `rows`) atomically.
pub fn write_metrics(path: &Path, header: &str, rows: &[String]) -> Result<()> {
    let mut text =
        String::with_capacity(header.len() + 1 + rows.iter().map(|r| r.len() + 1).sum::<usize>());
    text.push_str(header);
    text.push('\n');
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    write_atomic(path, |f| f.write_all(text.as_bytes()))
}
