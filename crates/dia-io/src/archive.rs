//! Members of zip files (`.npz` arrays, the pickles of PyTorch files), read with the declared
//! size of each as the bound: a deflate stream that inflates past it is cut there, and the
//! reader of the member's format then finds it short.

use std::path::Path;

use crate::error::{format_err, io_err, Result};

/// The (name, bytes) of every member of the zip file at `path` whose name `wanted` accepts,
/// stored or deflated, in archive order. `what` names the file's kind in errors
/// (`".npz (zip) file"`).
pub fn zip_members(
    path: &Path,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format_err(path, format!("not a readable {what}: {e}")))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        // Only the members asked for are opened: another member's damage is not their fault.
        let name = match zip.name_for_index(i) {
            Some(Ok(n)) => n.to_string(),
            _ => continue,
        };
        if !wanted(&name) {
            continue;
        }
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format_err(path, format!("cannot read {name}: {e}")))?;
        // The declared size is only a capacity hint, and a bounded one.
        let declared = entry.size();
        let mut bytes = Vec::with_capacity(declared.min(1 << 26) as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, declared), &mut bytes)
            .map_err(|e| format_err(path, format!("cannot read {name}: {e}")))?;
        out.push((name, bytes));
    }
    Ok(out)
}
