//! Shared by the fuzz targets: the readers of untrusted bytes take paths, so each input is
//! written to a per-process file in memory-backed /dev/shm (or the temp folder) first.

use std::path::PathBuf;

pub fn file_with(bytes: &[u8], ext: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let p = base.join(format!("dia-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}
