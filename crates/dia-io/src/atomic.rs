//! Atomic file writes: write to a temporary name in the same folder, sync, rename.

use std::fs::File;
use std::path::Path;

use crate::error::{io_err, Result};

/// Writes `path` through `write`, so that a crash never leaves a half-written file: the data
/// goes to `path.<pid>.<n>.tmp`, is synced, and is renamed over `path`. A read-only `path` is not
/// replaced.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let p = dir.path().join("a.txt");
/// dia_io::write_atomic(&p, |f| std::io::Write::write_all(f, b"one"))?;
/// let mut perms = std::fs::metadata(&p)?.permissions();
/// perms.set_readonly(true);
/// std::fs::set_permissions(&p, perms)?;
/// let e = dia_io::write_atomic(&p, |f| std::io::Write::write_all(f, b"two")).unwrap_err();
/// assert!(e.to_string().contains("read-only"), "{e}");
/// assert_eq!(std::fs::read(&p)?, b"one");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
/// `write` creates the temporary file `path.<pid>.<n>.tmp` — a name the stale-temporary sweep of
/// [`crate::run`] removes after a crash — which is then synced and renamed over `path`.
pub fn write_atomic_path(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    // A rename replaces a read-only file as easily as any other: refuse what the user
    // protected, as a plain write would.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        return Err(io_err(path)(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the file is read-only; not replacing it",
        )));
    }
    // Unique per call, so threads of one process writing the same file never share a
    // temporary.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
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
