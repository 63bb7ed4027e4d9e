//! Decoding image files and converting 8-bit pixels to f32 CHW in [0, 1].
//!
//! Images are decoded to RGB (grey becomes three equal channels, as PIL's `convert("RGB")` in
//! the reference, spec §7) and resized with a triangle filter, which is PIL's antialiased
//! `BILINEAR` resize that the reference applies to its 224-px sets (spec §13.7).

use std::path::Path;

use image::imageops::FilterType;
use image::{ImageReader, RgbImage};

use crate::error::{format_err, io_err, Result};

/// Decodes an image file to 8-bit RGB. A missing, unreadable or corrupt file is an error that
/// names it.
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let reader = ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(io_err(path))?;
    let img = reader
        .decode()
        .map_err(|e| format_err(path, format!("cannot decode image: {e}")))?;
    Ok(img.to_rgb8())
}

/// Resizes (when `size` differs) and converts an RGB image to f32 CHW in [0, 1].
pub fn rgb_to_chw(img: &RgbImage, size: Option<(usize, usize)>) -> Vec<f32> {
    let resized;
    let img = match size {
        Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
            resized = image::imageops::resize(img, w as u32, h as u32, FilterType::Triangle);
            &resized
        }
        _ => img,
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0.0f32; 3 * h * w];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * h * w + i] = p.0[c] as f32 / 255.0;
        }
    }
    out
}

/// Builds an RGB image from 8-bit pixels stored HWC with 1 (grey) or 3 channels.
pub(crate) fn rgb_from_hwc(pixels: &[u8], h: usize, w: usize, channels: usize) -> RgbImage {
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = (y as usize * w + x as usize) * channels;
        if channels == 1 {
            image::Rgb([pixels[i]; 3])
        } else {
            image::Rgb([pixels[i], pixels[i + 1], pixels[i + 2]])
        }
    })
}
