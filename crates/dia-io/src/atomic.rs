//! Atomic file writes: write to a temporary name in the same folder, sync, rename.

use std::fs::File;
use std::path::Path;

use crate::error::{io_err, Result};

/// Writes `path` through `write`, so that a crash never leaves a half-written file: the data
/// goes to `path.<pid>.tmp`, is synced, and is renamed over `path`.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_path(path, |tmp| {
        let mut file = File::create(tmp)?;
        write(&mut file)
    })
}

/// [`write_atomic`] for writers that insist on a path of their own (candle's `write_npy`):
/// `write` creates the temporary file `path.<pid>.tmp` — a name the stale-temporary sweep of
/// [`crate::run`] removes after a crash — which is then synced and renamed over `path`.
pub fn write_atomic_path(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let result = (|| {
        write(&tmp)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}
