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
///
/// A truncated JPEG is refused (the decoder would pad it silently), and images whose header
/// claims more than [`MAX_DECODED_SIDE`] pixels a side are refused before they are decoded.
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    crate::jpeg::check_complete(&bytes).map_err(|msg| format_err(path, msg))?;
    let mut reader = ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(io_err(path))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format_err(path, format!("cannot decode image: {e}")))?;
    Ok(img.to_rgb8())
}

/// The largest side of an image file [`decode_rgb`] decodes (a 16384² RGB image is 800 MB).
pub const MAX_DECODED_SIDE: u32 = 16384;

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

/// Lays out equally sized (3, H, W) tiles in [0, 1] row by row into one RGB image with a 2-px
/// white gutter, upscaled (nearest) so that a tile is at least `min_tile` pixels wide.
pub fn tile_grid(
    rows: &[Vec<candle_core::Tensor>],
    min_tile: usize,
) -> candle_core::Result<RgbImage> {
    let gap = 2;
    let (h, w) = match rows.first().and_then(|r| r.first()) {
        Some(t) => {
            let d = t.dims();
            if d.len() != 3 || d[0] != 3 {
                candle_core::bail!("tile_grid: tiles must be (3, H, W), got {d:?}")
            }
            (d[1], d[2])
        }
        None => candle_core::bail!("tile_grid: no tiles"),
    };
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (gw, gh) = (cols * (w + gap) + gap, rows.len() * (h + gap) + gap);
    let mut img = RgbImage::from_pixel(gw as u32, gh as u32, image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            if tile.dims() != [3, h, w] {
                candle_core::bail!(
                    "tile_grid: tile {:?} differs from (3, {h}, {w})",
                    tile.dims()
                )
            }
            let v = tile.flatten_all()?.to_vec1::<f32>()?;
            for y in 0..h {
                for x in 0..w {
                    let px =
                        |ch: usize| (v[(ch * h + y) * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                    let (ox, oy) = (gap + c * (w + gap) + x, gap + r * (h + gap) + y);
                    img.put_pixel(ox as u32, oy as u32, image::Rgb([px(0), px(1), px(2)]));
                }
            }
        }
    }
    let scale = (min_tile / h.max(w)).max(1) as u32;
    if scale > 1 {
        img = image::imageops::resize(
            &img,
            img.width() * scale,
            img.height() * scale,
            FilterType::Nearest,
        );
    }
    Ok(img)
}

/// One row per image: image i of every batch in `columns` (each (N, 3, H, W)), side by side,
/// as [`tile_grid`] lays them out (e.g. an image followed by its transformed versions).
pub fn columns_grid(
    columns: &[&candle_core::Tensor],
    min_tile: usize,
) -> candle_core::Result<RgbImage> {
    let n = match columns.first() {
        Some(c) => c.dim(0)?,
        None => candle_core::bail!("columns_grid: no columns"),
    };
    let rows = (0..n)
        .map(|i| columns.iter().map(|c| c.get(i)).collect())
        .collect::<candle_core::Result<Vec<Vec<_>>>>()?;
    tile_grid(&rows, min_tile)
}

/// The images of a batch (N, 3, H, W) in a near-square grid of ⌈√N⌉ columns.
pub fn square_grid(images: &candle_core::Tensor, min_tile: usize) -> candle_core::Result<RgbImage> {
    let n = images.dim(0)?;
    let cols = ((n as f64).sqrt().ceil() as usize).max(1);
    let rows = (0..n.div_ceil(cols))
        .map(|r| {
            (r * cols..((r + 1) * cols).min(n))
                .map(|i| images.get(i))
                .collect()
        })
        .collect::<candle_core::Result<Vec<Vec<_>>>>()?;
    tile_grid(&rows, min_tile)
}

/// Writes `img` as a PNG atomically (temporary name, then rename), creating the folder.
pub fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    Ok(crate::atomic::write_atomic(path, |file| {
        let mut w = std::io::BufWriter::new(file);
        img.write_to(&mut w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)?;
        std::io::Write::flush(&mut w)
    })?)
}
