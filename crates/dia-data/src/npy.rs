//! NumPy `.npy` arrays (format versions 1–3), parsed from bytes with every size checked
//! against the bytes actually there before anything is allocated: a header claiming a shape
//! of (4e9, 28, 28) is an error naming the file, not an abort (issue #19). Used for `.npy`
//! inputs and for the arrays inside `.npz` files ([`crate::npz`]).
//!
//! ```
//! // A 1-D uint8 array [1, 2, 3], as `np.save` writes it.
//! let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }";
//! let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
//! let pad = 64 - (10 + header.len() + 1) % 64;
//! let header = format!("{header}{}\n", " ".repeat(pad % 64));
//! bytes.extend((header.len() as u16).to_le_bytes());
//! bytes.extend(header.as_bytes());
//! bytes.extend([1u8, 2, 3]);
//! let a = dia_data::npy::parse(&bytes, "a.npy".as_ref())?;
//! assert_eq!((a.shape.as_slice(), a.to_u8()?), (&[3usize][..], vec![1, 2, 3]));
//! # Ok::<(), dia_data::Error>(())
//! ```

use std::path::Path;

use crate::error::{format_err, Result};

/// The element types the project reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyType {
    /// `u1`.
    U8,
    /// `i1`, `i2`, `i4`, `i8` or `u2`, `u4`, `u8` (labels): signed, width in bytes.
    Int {
        /// Bytes per element.
        width: usize,
        /// Whether the values are signed.
        signed: bool,
    },
    /// `f4`.
    F32,
    /// `f8`.
    F64,
}

impl NpyType {
    fn width(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::Int { width, .. } => width,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A parsed array: its type, shape (C order) and raw little-endian data.
#[derive(Clone, Debug)]
pub struct NpyArray<'a> {
    /// The element type.
    pub dtype: NpyType,
    /// The shape.
    pub shape: Vec<usize>,
    data: &'a [u8],
    path: &'a Path,
}

/// Parses the bytes of a `.npy` file (`path` only names it in errors).
pub fn parse<'a>(bytes: &'a [u8], path: &'a Path) -> Result<NpyArray<'a>> {
    let bad = |msg: String| format_err(path, format!("not a valid .npy array: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| bad("the header is cut short".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the header is not text".into()))?;
    let descr = field(header, "descr").ok_or_else(|| bad("no 'descr' in the header".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    // Type codes are ASCII; slicing anything else by bytes could split a character (a panic
    // the fuzzer found).
    if !descr.is_ascii() {
        return Err(bad(format!("unsupported element type {descr:?}")));
    }
    let (order, code) = descr.split_at(descr.len().min(1));
    if order == ">" && code != "u1" && code != "i1" {
        return Err(bad(format!(
            "big-endian arrays ({descr}) are not supported"
        )));
    }
    let dtype = match code {
        "u1" | "b1" => NpyType::U8,
        "i1" | "i2" | "i4" | "i8" | "u2" | "u4" | "u8" => NpyType::Int {
            width: code[1..].parse().unwrap_or(1),
            signed: code.starts_with('i'),
        },
        "f4" => NpyType::F32,
        "f8" => NpyType::F64,
        _ => return Err(bad(format!("unsupported element type {descr:?}"))),
    };
    if field(header, "fortran_order").is_some_and(|f| f.trim().starts_with("True")) {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape_text =
        field(header, "shape").ok_or_else(|| bad("no 'shape' in the header".into()))?;
    let inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.find(')').map(|end| &s[..end]))
        .ok_or_else(|| bad(format!("unreadable shape {shape_text:?}")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("unreadable shape ({inner})")))?;
    let data = &bytes[start + header_len..];
    // Checked before any allocation: the elements the header claims must be the bytes there.
    let claimed = shape
        .iter()
        .try_fold(dtype.width(), |acc, &d| acc.checked_mul(d));
    match claimed {
        Some(n) if n == data.len() => {}
        _ => {
            return Err(bad(format!(
            "the header claims shape {shape:?} of {descr} ({} bytes) but the data holds {} bytes",
            claimed.map_or("more than 2^64".to_string(), |n| n.to_string()),
            data.len()
        )))
        }
    }
    Ok(NpyArray {
        dtype,
        shape,
        data,
        path,
    })
}

/// The text after `'key':` up to the next top-level comma (the shape's tuple kept whole).
fn field<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

impl NpyArray<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of a uint8 array.
    pub fn to_u8(&self) -> Result<Vec<u8>> {
        match self.dtype {
            NpyType::U8 => Ok(self.data.to_vec()),
            d => Err(format_err(
                self.path,
                format!("the array is {d:?}, expected uint8"),
            )),
        }
    }

    /// The values of an integer array (labels), as i64.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let w = self.dtype.width();
        match self.dtype {
            NpyType::U8 => Ok(self.data.iter().map(|&b| b as i64).collect()),
            NpyType::Int { signed, .. } => Ok(self
                .data
                .chunks_exact(w)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..w].copy_from_slice(c);
                    if signed && c[w - 1] & 0x80 != 0 {
                        b[w..].fill(0xff);
                    }
                    i64::from_le_bytes(b)
                })
                .collect()),
            d => Err(format_err(
                self.path,
                format!("the array is {d:?}, expected integers"),
            )),
        }
    }

    /// The values of a float array, as f32.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        match self.dtype {
            NpyType::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            NpyType::F64 => Ok(self
                .data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect()),
            d => Err(format_err(
                self.path,
                format!(
                    "the array is {d:?}; expected float32 (or float64) values in [0, 1] \
                     (divide uint8 images by 255)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn reads_types_and_refuses_lying_headers() {
        let p = Path::new("x.npy");
        let b = npy(
            "<i8",
            "(2,)",
            &[
                255, 255, 255, 255, 255, 255, 255, 255, 7, 0, 0, 0, 0, 0, 0, 0,
            ],
        );
        assert_eq!(parse(&b, p).unwrap().to_i64().unwrap(), [-1, 7]);
        let b = npy("<f4", "(1, 1)", &1.5f32.to_le_bytes());
        assert_eq!(parse(&b, p).unwrap().to_f32().unwrap(), [1.5]);
        let b = npy("|u1", "(4000000000, 28, 28)", &[0; 16]);
        let e = parse(&b, p).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("16 bytes"), "{e}");
        let b = npy("|u1", "(18446744073709551615, 2)", &[0; 16]);
        assert!(parse(&b, p).unwrap_err().to_string().contains("2^64"));
        assert!(parse(b"\x93NUMPY\x01", p).is_err());
        let b = npy("<c8", "(1,)", &[0; 8]);
        assert!(parse(&b, p)
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
    }
}
