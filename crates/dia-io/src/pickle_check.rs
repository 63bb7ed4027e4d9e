//! A pre-flight walk over the pickle stream of a PyTorch zip file, before candle's reader
//! sees it. candle allocates every length-prefixed pickle argument (a string, a byte string)
//! at the length the file claims before reading it, so a 60-byte file claiming a 4 GB string
//! aborts the process (found by the `pytorch` fuzz target). Here every such length is checked
//! against the bytes that are really left; nothing is executed or built. Opcodes this walk does
//! not know end the walk, and candle's reader judges the rest.

/// `Ok(())` when every length-prefixed argument of `pkl` fits the stream, else what does not.
pub(crate) fn check_lengths(pkl: &[u8]) -> Result<(), String> {
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Result<usize, String> {
        let start = *i;
        if n > pkl.len().saturating_sub(start) {
            return Err(format!(
                "the pickle claims {n} bytes at offset {start}, but only {} remain",
                pkl.len().saturating_sub(start)
            ));
        }
        *i += n;
        Ok(start)
    };
    let int_le = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    while i < pkl.len() {
        let op = pkl[i];
        i += 1;
        // (bytes of the length field, or a fixed argument size when the first is 0).
        let (len_bytes, fixed) = match op {
            b'.' => return Ok(()),
            0x80 | b'q' | b'h' | b'K' => (0, 1),
            b'M' => (0, 2),
            b'r' | b'j' | b'J' => (0, 4),
            b'G' | 0x95 => (0, 8),
            b'}' | b']' | b')' | b'(' | b'u' | b's' | b'a' | b'e' | b't' | 0x85 | 0x86 | 0x87
            | b'R' | b'b' | 0x88 | 0x89 | b'N' | 0x94 | b'Q' | 0x81 | b'0' | b'2' | 0x93 => (0, 0),
            0x8a | 0x8c | b'C' | b'U' => (1, 0),
            0x8b | b'X' | b'B' | b'T' => (4, 0),
            0x8d | 0x8e => (8, 0),
            b'c' => {
                // GLOBAL: module and name, each ended by a newline.
                for _ in 0..2 {
                    match pkl[i..].iter().position(|&b| b == b'\n') {
                        Some(n) => i += n + 1,
                        None => return Err("the pickle ends inside a GLOBAL".into()),
                    }
                }
                continue;
            }
            // Not known here: candle decides.
            _ => return Ok(()),
        };
        if len_bytes == 0 {
            take(&mut i, fixed)?;
            continue;
        }
        let at = take(&mut i, len_bytes)?;
        let n = int_le(&pkl[at..at + len_bytes]);
        // BINSTRING's length is signed; a negative one is as wrong as a huge one.
        let n = usize::try_from(n).map_err(|_| format!("the pickle claims {n} bytes"))?;
        take(&mut i, n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_lengths;

    #[test]
    fn claimed_lengths_must_fit_the_stream() {
        // PROTO 2, BINUNICODE "hi", STOP.
        assert_eq!(check_lengths(b"\x80\x02X\x02\x00\x00\x00hi."), Ok(()));
        // The fuzzer's case: a 4 GB string in a few bytes.
        let e = check_lengths(b"\x80\x02X\xf7\xff\xff\xffhi.").unwrap_err();
        assert!(e.contains("4294967287") && e.contains("remain"), "{e}");
        assert!(check_lengths(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
        assert!(check_lengths(b"\x80\x02cos\nsys").is_err());
        // An opcode this walk does not know is left to candle.
        assert_eq!(check_lengths(b"\x80\x02\xff\xff"), Ok(()));
    }
}
