//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! Header: two zero bytes, a type code (only `0x08`, unsigned byte, is used by these sets), the
//! number of dimensions, then each dimension as a big-endian u32; the data follows. A header
//! that does not match the data, a truncated file or trailing bytes is an error naming the
//! file. Reading is bounded by the header, so a gzip bomb cannot exhaust memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{format_err, io_err, Error, Result};
use dia_io::write_atomic;

/// Largest IDX payload accepted (4 GiB), a guard against absurd headers.
const MAX_IDX_BYTES: u64 = 4 << 30;

/// The class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// An unsigned-byte IDX array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, e.g. `[60000, 28, 28]` for images or `[60000]` for labels.
    pub dims: Vec<usize>,
    /// The values in row-major order.
    pub data: Vec<u8>,
}

fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let mut file = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic).map_err(io_err(path))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(file);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(GzDecoder::new(chained))
    } else {
        Box::new(chained)
    })
}

/// Reads as many bytes as are available up to `buf.len()`.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads an IDX file (raw or gzip), checking the header against the data.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let mut r = open_maybe_gz(path)?;
    let corrupt = |e: std::io::Error| format_err(path, format!("cannot read IDX data: {e}"));
    let mut head = [0u8; 4];
    if read_full(&mut r, &mut head).map_err(corrupt)? < 4 {
        return Err(format_err(path, "truncated IDX header"));
    }
    if head[0] != 0 || head[1] != 0 {
        return Err(format_err(
            path,
            format!(
                "not an IDX file (magic bytes {:02x} {:02x})",
                head[0], head[1]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(format_err(
            path,
            format!(
                "IDX type code 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                head[2]
            ),
        ));
    }
    let ndim = head[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(format_err(path, format!("IDX file with {ndim} dimensions")));
    }
    let mut dims_raw = vec![0u8; 4 * ndim];
    if read_full(&mut r, &mut dims_raw).map_err(corrupt)? < dims_raw.len() {
        return Err(format_err(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = dims_raw
        .chunks(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| format_err(path, format!("IDX dimensions {dims:?} are too large")))?;
    // The header is untrusted: reserve at most 64 MiB up front, grow as the data arrives.
    let mut data = Vec::with_capacity(len.min(64 << 20) as usize);
    (&mut r).take(len).read_to_end(&mut data).map_err(corrupt)?;
    if (data.len() as u64) < len {
        return Err(format_err(
            path,
            format!(
                "truncated: the header {dims:?} announces {len} bytes of data, the file has {}",
                data.len()
            ),
        ));
    }
    let mut extra = [0u8; 1];
    if read_full(&mut r, &mut extra).map_err(corrupt)? != 0 {
        return Err(format_err(
            path,
            format!("trailing bytes after the {len} bytes announced by the header {dims:?}"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Writes an unsigned-byte IDX file, gzip-compressed when the name ends in `.gz`, atomically
/// (temporary file, then rename).
pub fn write_idx(path: &Path, array: &IdxArray) -> Result<()> {
    let expected: usize = array.dims.iter().product();
    if expected != array.data.len() || array.dims.is_empty() || array.dims.len() > 4 {
        return Err(Error::Invalid(format!(
            "IDX dims {:?} do not match {} values",
            array.dims,
            array.data.len()
        )));
    }
    let mut bytes = vec![0, 0, 0x08, array.dims.len() as u8];
    for &d in &array.dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::Invalid(format!("IDX dimension {d} does not fit in u32")))?;
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(&array.data);
    let gz = path.extension().is_some_and(|e| e == "gz");
    Ok(write_atomic(path, |file| {
        let mut w = BufWriter::new(file);
        if gz {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::best());
            enc.write_all(&bytes)?;
            enc.finish()?.flush()
        } else {
            w.write_all(&bytes)?;
            w.flush()
        }
    })?)
}
