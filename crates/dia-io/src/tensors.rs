//! Named tensors in files: safetensors with string metadata (what every checkpoint, resume
//! file, statistics file and embedding file of dia is), and PyTorch's zip files (read only,
//! through candle's pickle reader, which executes no code).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::atomic::write_atomic;
use crate::error::{format_err, io_err, Result};

/// Writes `tensors` (any device; written from host memory, sorted by name) and `metadata` to
/// `path` as safetensors, atomically, with [`crate::keys::VERSION`] and the tensors'
/// [`crate::keys::CHECKSUM`] added.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    // A file is written from host memory, whatever device the tensors live on.
    let mut host: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, v)| {
            Ok((
                k.as_str(),
                v.to_device(&Device::Cpu).map_err(|e| format_err(path, e))?,
            ))
        })
        .collect::<Result<_>>()?;
    host.sort_by(|a, b| a.0.cmp(b.0));
    let mut meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert(
        crate::keys::VERSION.into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    // The checksum covers the tensors only, so it is computed from the host tensors before
    // serialising, with the same views `safetensors::serialize` writes.
    let checksum = checksum_of(host.iter().map(|(k, v)| (*k, v)));
    meta.insert(crate::keys::CHECKSUM.into(), checksum);
    let mut bytes = safetensors::serialize(host.iter().map(|(k, v)| (*k, v)), Some(meta))
        .map_err(|e| format_err(path, e))?;
    sort_header(&mut bytes).map_err(|e| format_err(path, e))?;
    write_atomic(path, |f| std::io::Write::write_all(f, &bytes))
}

/// Rewrites a serialised safetensors buffer's JSON header with every object's keys sorted.
///
/// `safetensors::serialize` takes the metadata as a `HashMap` and writes it in that map's
/// (randomly seeded) order, so two saves of the same tensors and metadata gave files with
/// different bytes, and different SHA-256s where a report records one. The sorted header is the
/// same JSON with the same length (the same members, compact), so it takes the old one's place
/// and its padding; the tensors' offsets do not move.
fn sort_header(bytes: &mut [u8]) -> std::result::Result<(), String> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .filter(|&n| bytes.len() >= 8 + n)
        .ok_or("safetensors wrote a buffer shorter than its header")?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + len]).map_err(|e| e.to_string())?;
    let mut sorted = Vec::with_capacity(len);
    write_sorted(&header, &mut sorted).map_err(|e| e.to_string())?;
    if sorted.len() > len {
        return Err(format!(
            "the sorted safetensors header is {} bytes, longer than the {len} written",
            sorted.len()
        ));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + len].fill(b' ');
    Ok(())
}

/// Compact JSON of `v` with object keys in sorted order, whatever order `serde_json::Map`
/// keeps (it keeps insertion order when any crate in the build enables `preserve_order`).
fn write_sorted(v: &serde_json::Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_sorted(&map[k], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(item, out)?;
            }
            out.push(b']');
        }
        leaf => serde_json::to_writer(&mut *out, leaf)?,
    }
    Ok(())
}

/// SHA-256 (hex) over tensors given sorted by name: each one's name, dtype, shape and data.
fn checksum_of<'a, V: safetensors::View>(tensors: impl Iterator<Item = (&'a str, V)>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (name, view) in tensors {
        h.update(format!("{name}\0{:?}\0{:?}\0", view.dtype(), view.shape()).as_bytes());
        h.update(view.data());
    }
    hex(&h.finalize())
}

/// [`checksum_of`] every tensor of a safetensors buffer.
fn tensor_checksum(path: &Path, bytes: &[u8]) -> Result<String> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format_err(path, format!("not a safetensors file: {e}")))?;
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(checksum_of(tensors.iter().map(|(k, v)| (k.as_str(), v))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of a whole file: what ties a statistics file to the checkpoint it was
/// computed from.
pub fn file_checksum(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(io_err(path))?;
    Ok(hex(&h.finalize()))
}

/// A short fingerprint (16 hex digits of SHA-256) of a resolved config's text: equal configs,
/// equal fingerprints.
///
/// ```
/// assert_eq!(dia_io::fingerprint("epochs: 3\n"), dia_io::fingerprint("epochs: 3\n"));
/// assert_ne!(dia_io::fingerprint("epochs: 3\n"), dia_io::fingerprint("epochs: 4\n"));
/// ```
pub fn fingerprint(config_text: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(config_text.as_bytes())[..8])
}

/// A safetensors file's metadata, without reading its tensors.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    metadata_of(path, &bytes)
}

fn metadata_of(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format_err(path, format!("not a safetensors file: {e}")))?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Reads a safetensors file: its tensors on `device` and its metadata.
pub fn load_safetensors(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let meta = metadata_of(path, &bytes)?;
    // Files from before the checksum (and from other tools) have none: nothing to check.
    if let Some(stored) = meta.get(crate::keys::CHECKSUM) {
        let computed = tensor_checksum(path, &bytes)?;
        if *stored != computed {
            return Err(format_err(
                path,
                format!(
                    "the file is corrupt: its tensors' checksum is {computed}, but it was written \
                     with {stored}"
                ),
            ));
        }
    }
    let tensors =
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| format_err(path, e))?;
    Ok((tensors, meta))
}

/// Reads the tensors of a PyTorch ≥ 1.6 zip file (`torch.save`) — all of them, or those under
/// the entry `key` of a saved dict (e.g. a lucidrains Trainer file's `"model"`) — refusing
/// other formats with a message that says how to re-save the file.
pub fn read_pytorch(path: &Path, key: Option<&str>) -> Result<HashMap<String, Tensor>> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let n = file.read(&mut magic).map_err(io_err(path))?;
    if n < 4 || &magic != b"PK\x03\x04" {
        return Err(format_err(
            path,
            "not a zip-format PyTorch file (files written by torch < 1.6 use the legacy format); \
             re-save it with a current PyTorch: \
             torch.save(torch.load(IN, map_location=\"cpu\"), OUT)",
        ));
    }
    check_pickles(path)?;
    let what = key.map_or("the PyTorch file".to_string(), |k| format!("entry {k:?}"));
    candle_core::pickle::read_all_with_key(path, key)
        .map(|t| t.into_iter().collect())
        .map_err(|e| format_err(path, format!("cannot read {what}: {e}")))
}

/// Checks every `data.pkl` of the zip with [`crate::pickle_check`] before candle reads it.
fn check_pickles(path: &Path) -> Result<()> {
    let pickles = crate::archive::zip_members(path, "zip file", |n| n.ends_with("data.pkl"))?;
    for (name, pkl) in pickles {
        crate::pickle_check::check_lengths(&pkl)
            .map_err(|msg| format_err(path, format!("{name}: {msg}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_with_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let t = Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
        let meta = BTreeMap::from([(crate::keys::EPOCH.to_string(), "3".to_string())]);
        save_safetensors(&path, &[("b".into(), t.clone()), ("a".into(), t)], &meta).unwrap();
        let (tensors, read) = load_safetensors(&path, &Device::Cpu).unwrap();
        assert_eq!(tensors["a"].to_vec1::<f32>().unwrap(), [1., 2., 3.]);
        assert_eq!(read[crate::keys::EPOCH], "3");
        assert!(read.contains_key(crate::keys::VERSION));
        assert_eq!(read_metadata(&path).unwrap(), read);
        let junk = dir.path().join("junk.pth");
        std::fs::write(&junk, b"not a zip").unwrap();
        let e = read_pytorch(&junk, None).unwrap_err().to_string();
        assert!(
            e.contains("junk.pth") && e.contains("not a zip-format"),
            "{e}"
        );
        let e = read_metadata(&junk).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
    }

    #[test]
    fn equal_saves_give_equal_bytes() {
        // Twenty metadata keys: in a HashMap's random order two saves all but never agree.
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::arange(0f32, 6., &Device::Cpu).unwrap();
        let u = Tensor::new(&[7u8, 8], &Device::Cpu).unwrap();
        let meta: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("dia.key{i:02}"), format!("v\"{i}\"")))
            .collect();
        let tensors = [("w".to_string(), t), ("a".to_string(), u)];
        let (p, q) = (
            dir.path().join("p.safetensors"),
            dir.path().join("q.safetensors"),
        );
        save_safetensors(&p, &tensors, &meta).unwrap();
        save_safetensors(&q, &tensors, &meta).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            bytes == std::fs::read(&q).unwrap(),
            "two equal saves wrote different bytes"
        );
        // The header's metadata keys are in sorted order, and the file reads back whole.
        let header = String::from_utf8_lossy(&bytes[8..]);
        let at: Vec<usize> = (0..20)
            .map(|i| header.find(&format!("\"dia.key{i:02}\"")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        let (read, m) = load_safetensors(&p, &Device::Cpu).unwrap();
        assert_eq!(
            read["w"].to_vec1::<f32>().unwrap(),
            [0., 1., 2., 3., 4., 5.]
        );
        assert_eq!(read["a"].to_vec1::<u8>().unwrap(), [7, 8]);
        assert_eq!(m["dia.key07"], "v\"7\"");
    }
}
