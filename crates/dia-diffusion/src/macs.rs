//! Multiply-accumulate count of one UNet forward pass per image (the paper's resolution table
//! reports the DDPM's MACs at 32, 64 and 128 px).
//!
//! Counted: convolutions (including the weight-standardised ones and 1×1 projections), linear
//! layers, and the matrix products of both attention kinds. Not counted: normalisations,
//! activations, softmax and additions (a few percent at most), as in `thop`-style counters.

use crate::attention::{DIM_HEAD, HEADS};
use crate::unet::UnetConfig;

fn conv(cin: usize, cout: usize, k: usize, hw_out: usize) -> u64 {
    (cin * cout * k * k * hw_out) as u64
}

fn resnet_block(din: usize, dout: usize, time_dim: usize, hw: usize) -> u64 {
    let mut m = (time_dim * 2 * dout) as u64 + conv(din, dout, 3, hw) + conv(dout, dout, 3, hw);
    if din != dout {
        m += conv(din, dout, 1, hw);
    }
    m
}

fn attention(dim: usize, hw: usize) -> u64 {
    let hidden = HEADS * DIM_HEAD;
    // to_qkv + to_out, plus two (d × n) by (n × d)-sized products per head.
    conv(dim, 3 * hidden, 1, hw)
        + conv(hidden, dim, 1, hw)
        + 2 * (HEADS * DIM_HEAD * DIM_HEAD * hw) as u64
}

fn full_attention(dim: usize, hw: usize) -> u64 {
    let hidden = HEADS * DIM_HEAD;
    // q·kᵀ and attn·v are n × n × d per head.
    conv(dim, 3 * hidden, 1, hw)
        + conv(hidden, dim, 1, hw)
        + 2 * (HEADS * hw * hw * DIM_HEAD) as u64
}

/// MACs of one forward pass of a UNet of shape `cfg` on one `size`×`size` image.
pub fn unet_macs(cfg: &UnetConfig, size: usize) -> u64 {
    let dim = cfg.dim;
    let time_dim = 4 * dim;
    let dims = cfg.widths();
    let n = dims.len() - 1;
    let mut side = size;
    let mut m = conv(cfg.channels, dim, 7, side * side)
        + (dim * time_dim) as u64
        + (time_dim * time_dim) as u64;
    for i in 0..n {
        let (din, dout) = (dims[i], dims[i + 1]);
        let hw = side * side;
        m += 2 * resnet_block(din, din, time_dim, hw) + attention(din, hw);
        if i + 1 < n {
            side /= 2;
            m += conv(din, dout, 4, side * side);
        } else {
            m += conv(din, dout, 3, hw);
        }
    }
    let hw = side * side;
    m += 2 * resnet_block(dims[n], dims[n], time_dim, hw) + full_attention(dims[n], hw);
    for j in 0..n {
        let (din, dout) = (dims[n - 1 - j], dims[n - j]);
        let hw = side * side;
        m += 2 * resnet_block(dout + din, dout, time_dim, hw) + attention(dout, hw);
        if j + 1 < n {
            side *= 2;
        }
        m += conv(dout, din, 3, side * side);
    }
    let hw = side * side;
    m + resnet_block(2 * dim, dim, time_dim, hw) + conv(dim, cfg.channels, 1, hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_grow_with_the_area() {
        let cfg = UnetConfig::default();
        let (a, b) = (unet_macs(&cfg, 32), unet_macs(&cfg, 64));
        // Convolutions scale with the area (×4); the full attention at the bottom grows faster.
        assert!(b > 3 * a && b < 5 * a, "{a} {b}");
    }
}
