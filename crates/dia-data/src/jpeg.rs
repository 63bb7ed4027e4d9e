//! Whether a JPEG file is complete. The `image` crate's decoder pads a truncated scan with
//! grey and returns no error (issue #19: truncated JPEGs were trained on, scored and passed by
//! `dia data check`), so before decoding, the marker segments are walked from SOI: every
//! segment's length must fit the file, and the entropy-coded data of the last scan must be
//! followed by an EOI marker. Thumbnails inside APPn segments are skipped by their length, so
//! their own EOI does not count.

/// `Ok(())` for a complete JPEG (or bytes that do not start with SOI, which the decoder
/// judges), else what is missing.
pub(crate) fn check_complete(b: &[u8]) -> Result<(), &'static str> {
    if b.len() < 2 || b[..2] != [0xFF, 0xD8] {
        return Ok(());
    }
    const CUT: &str = "the JPEG is truncated (no end-of-image marker after its last scan)";
    let mut i = 2;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while i + 1 < b.len() && b[i] == 0xFF && b[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= b.len() {
            return Err(CUT);
        }
        if b[i] != 0xFF {
            return Err("the JPEG is corrupt (a marker segment is not where its length says)");
        }
        let marker = b[i + 1];
        match marker {
            0xD9 => return Ok(()),
            // Markers without a length: TEM and the restart markers.
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 3 >= b.len() {
            return Err(CUT);
        }
        let next = i + 2 + u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if next > b.len() {
            return Err(CUT);
        }
        if marker != 0xDA {
            i = next;
            continue;
        }
        // Start of scan: entropy-coded data up to the next marker that is neither a stuffed
        // 0xFF00 nor a restart marker.
        let mut j = next;
        loop {
            if j + 1 >= b.len() {
                return Err(CUT);
            }
            if b[j] == 0xFF && !matches!(b[j + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                break;
            }
            j += 1;
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 7, 3]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_whole_jpeg_passes_and_every_truncation_fails() {
        let b = jpeg();
        assert_eq!(check_complete(&b), Ok(()));
        // Trailing bytes after EOI are allowed.
        let mut padded = b.clone();
        padded.extend([0, 0, 0]);
        assert_eq!(check_complete(&padded), Ok(()));
        for cut in [b.len() - 1, b.len() - 2, b.len() / 2, 40, 3] {
            assert!(
                check_complete(&b[..cut]).is_err(),
                "cut at {cut} of {}",
                b.len()
            );
        }
        // Not a JPEG: left to the decoder.
        assert_eq!(check_complete(b"\x89PNG"), Ok(()));
    }
}
