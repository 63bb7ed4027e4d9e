//! NCHW feature maps read as zero-padded, channel-blocked rows — the layout the Winograd
//! transforms load from: `[c/16][row][column][16]`, one 64-byte vector per pixel holding 16
//! channels. Built a few rows at a time for a block of tiles (so it stays in cache), or for
//! whole images when a pass runs over all tiles at once.

use rayon::prelude::*;

use super::transforms::{self, LANES};
use crate::scratch::Scratch;

/// One NCHW batch `x (n, c, h, w)` seen with `pad` zeros on the top and left and as many as
/// needed on the bottom and right to fill `wp` columns (and any rows asked for).
pub(super) struct Source<'a> {
    pub x: &'a [f32],
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub pad: usize,
    pub wp: usize,
}

impl Source<'_> {
    /// Channel blocks of 16.
    pub fn cblocks(&self) -> usize {
        self.c.div_ceil(LANES)
    }

    /// Padded rows `y0..` of channel block `cb` of image `img`, as many as `dst` holds:
    /// `dst[(r·wp + x)·16 + l]` is channel `16·cb + l` at padded (y0 + r, x).
    pub fn rows(&self, img: usize, cb: usize, y0: usize, dst: &mut [f32]) {
        let (wp, pad, w) = (self.wp, self.pad, self.w);
        assert!(w + pad <= wp, "winograd: padded width too small");
        for (r, row) in dst.chunks_mut(wp * LANES).enumerate() {
            let yp = y0 + r;
            if yp < pad || yp >= self.h + pad {
                row.fill(0.0);
                continue;
            }
            let y = yp - pad;
            let chans: [Option<&[f32]>; LANES] = std::array::from_fn(|l| {
                let ch = cb * LANES + l;
                (ch < self.c).then(|| &self.x[((img * self.c + ch) * self.h + y) * w..][..w])
            });
            row[..pad * LANES].fill(0.0);
            row[(w + pad) * LANES..].fill(0.0);
            transforms::block_row(&chans, w, &mut row[pad * LANES..], LANES);
        }
    }

    /// Rows `0..hp` of every image and channel block: `[n][c/16][hp][wp][16]` (every
    /// element written, so a [`Scratch`] buffer).
    pub fn blocked(&self, n: usize, hp: usize) -> Scratch {
        let plane = hp * self.wp * LANES;
        let cblocks = self.cblocks();
        let mut xb = Scratch::take(n * cblocks * plane);
        xb.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(j, dst)| self.rows(j / cblocks, j % cblocks, 0, dst));
        xb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Throughput of the blocked copy, for development:
    /// `cargo test --release -p dia-nn --lib -- --ignored --nocapture blocked_speed`.
    #[test]
    #[ignore]
    fn blocked_speed() {
        let (n, c, h, w) = (64, 64, 32, 32);
        let x = vec![0.5f32; n * c * h * w];
        let s = Source {
            x: &x,
            c,
            h,
            w,
            pad: 1,
            wp: w + 2,
        };
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let b = s.blocked(n, h + 2);
            let dt = t.elapsed().as_secs_f64();
            let gb = ((x.len() + b.len()) * 4) as f64 / 1e9;
            println!(
                "blocked: {:.2} ms, {:.1} GB/s read+write",
                dt * 1e3,
                gb / dt
            );
        }
        let mut y = vec![0f32; x.len() + x.len() / 8];
        for _ in 0..3 {
            let t = std::time::Instant::now();
            y.par_chunks_mut(h * w)
                .zip(x.par_chunks(h * w))
                .for_each(|(d, s)| d.copy_from_slice(s));
            let dt = t.elapsed().as_secs_f64();
            let gb = (x.len() * 8) as f64 / 1e9;
            println!("copy: {:.2} ms, {:.1} GB/s read+write", dt * 1e3, gb / dt);
        }
    }
}
