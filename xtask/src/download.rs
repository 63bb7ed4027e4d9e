//! Downloads with a progress bar and resume (HTTP `Range`), and hash verification.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::Digest;

use crate::manifest::Source;

/// Downloads `url` into `part` (appending to what is there: a resumed download), then renames
/// it to `dest`. The server must honour `Range` for a resume; if it answers 200 instead, the
/// download starts over.
pub fn download(url: &str, part: &Path, dest: &Path, expected_size: Option<u64>) -> Result<()> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = ureq::get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        // 416: the part file is already complete (or larger than the file).
        Err(ureq::Error::Status(416, _)) if have > 0 && Some(have) == expected_size => {
            std::fs::rename(part, dest)?;
            return Ok(());
        }
        Err(e) => bail!("GET {url}: {e}"),
    };
    let resumed = resp.status() == 206;
    let total = resp
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| if resumed { n + have } else { n })
        .or(expected_size);
    let mut file = if resumed {
        OpenOptions::new().append(true).open(part)?
    } else {
        std::fs::File::create(part)?
    };
    let start = if resumed { have } else { 0 };
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(
        dest.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(start);
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = start;
    loop {
        let n = reader.read(&mut buf).with_context(|| {
            format!("GET {url}: connection broke after {got} bytes; run again to resume")
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        got += n as u64;
        bar.set_position(got);
    }
    file.sync_all()?;
    bar.finish_and_clear();
    if let Some(t) = total {
        if got < t {
            bail!("GET {url}: the connection closed after {got} of {t} bytes; run again to resume");
        }
    }
    std::fs::rename(part, dest)?;
    Ok(())
}

/// Streams a file through SHA-256 and MD5.
pub fn hashes(path: &Path) -> Result<(String, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut sha, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok((
        format!("{:x}", sha.finalize()),
        format!("{:x}", md5.finalize()),
    ))
}

/// Whether a file matches its manifest entry: `Ok(Some(sha256))` when unverified (no hash in
/// the manifest), `Ok(None)` when verified, an error naming the mismatch otherwise.
pub fn verify(path: &Path, src: &Source) -> Result<Option<String>> {
    let len = std::fs::metadata(path)?.len();
    if let Some(size) = src.size {
        if len != size {
            bail!("{}: {len} bytes, the manifest says {size}", path.display());
        }
    }
    let (sha, md5) = hashes(path)?;
    let sha_ok = src
        .sha256
        .iter()
        .chain(&src.alt_sha256)
        .any(|w| w.eq_ignore_ascii_case(&sha));
    let md5_ok = src
        .md5
        .as_ref()
        .is_some_and(|w| w.eq_ignore_ascii_case(&md5));
    if sha_ok || md5_ok {
        return Ok(None);
    }
    if src.sha256.is_none() && src.md5.is_none() && src.alt_sha256.is_empty() {
        return Ok(Some(sha));
    }
    bail!(
        "{}: sha256 {sha} / md5 {md5} match none of the manifest's hashes (sha256 {:?}, md5 {:?})",
        path.display(),
        src.sha256.iter().chain(&src.alt_sha256).collect::<Vec<_>>(),
        src.md5
    )
}
