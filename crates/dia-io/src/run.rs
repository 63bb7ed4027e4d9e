//! Chores of a training run directory shared by `dia train` and `dia train-ddpm`: a metrics
//! CSV whose first column counts progress (epoch or step), trimmed back to the last checkpoint
//! on resume, and the temporary files an interrupted [`write_atomic`] leaves behind.

use std::io::Write;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{io_err, Error, Result};

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

/// The name of the lock file [`RunLock`] holds in a directory.
pub const LOCK_FILE: &str = ".dia.lock";

/// An exclusive lock on a directory that a dia process writes (a training run, an evaluation
/// output), held until it is dropped. It is an OS file lock (`flock` on Unix, `LockFileEx` on
/// Windows) on [`LOCK_FILE`], so the kernel releases it when the process dies: a `kill -9`
/// leaves no stale lock. The file holds the holder's process id and command line, which a
/// second process is shown when it is refused.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let lock = dia_io::run::RunLock::acquire(dir.path())?;
/// let second = dia_io::run::RunLock::acquire(dir.path()).unwrap_err().to_string();
/// assert!(second.contains("in use by another dia process"), "{second}");
/// drop(lock);
/// dia_io::run::RunLock::acquire(dir.path())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A directory the lock created is removed again when the lock is dropped while it holds
/// nothing of value (only the lock file, `config.yaml`, `metrics.csv` or temporaries): a run
/// that failed before its first checkpoint leaves no half-made directory behind.
#[derive(Debug)]
pub struct RunLock {
    file: Option<std::fs::File>,
    dir: std::path::PathBuf,
    created: bool,
}

/// Files a run directory may hold before its first checkpoint.
const NOTHING_OF_VALUE: [&str; 3] = [LOCK_FILE, "config.yaml", "metrics.csv"];

impl Drop for RunLock {
    fn drop(&mut self) {
        // Unlocked first (closing the file releases the flock).
        drop(self.file.take());
        if !self.created {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let disposable = |n: &String| NOTHING_OF_VALUE.contains(&n.as_str()) || n.ends_with(".tmp");
        if names.iter().all(disposable) {
            for n in &names {
                let _ = std::fs::remove_file(self.dir.join(n));
            }
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                msg: "is a file, not a directory".into(),
            });
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "a process that has not yet written its name".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        // Ours now: say who holds it (the content is informational, the lock is the flock).
        let me = format!(
            "pid {}: {}\n",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        use std::io::Seek;
        file.set_len(0).map_err(io_err(&path))?;
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(io_err(&path))?;
        file.write_all(me.as_bytes()).map_err(io_err(&path))?;
        Ok(Self {
            file: Some(file),
            dir: dir.to_path_buf(),
            created,
        })
    }
}

/// Checks, under the run's [`RunLock`], that a new run may start in `dir`: refused when `dir`
/// already holds `marker` (the checkpoint a finished or interrupted run leaves), so a run is
/// never silently overwritten.
pub fn check_new_run(dir: &Path, marker: &str) -> Result<()> {
    if dir.join(marker).exists() {
        return Err(Error::RunExists {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks that the run in `dir` can be resumed from `file`: refused with a message saying what
/// to do when the run stopped before its first checkpoint.
pub fn check_resumable(dir: &Path, file: &str) -> Result<()> {
    if !dir.join(file).is_file() {
        return Err(Error::NothingToResume {
            dir: dir.to_path_buf(),
            file: file.to_string(),
        });
    }
    Ok(())
}

/// Whether a process holds the [`RunLock`] of `dir` now (without creating anything).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}
