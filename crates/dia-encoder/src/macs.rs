//! Multiply-accumulate count of one ResNet-18 forward pass per image, with the CSI heads, for
//! the GFLOP/s figures of `dia bench` (docs/benchmarks.md).
//!
//! Counted: every convolution (stem, the two 3×3 of each basic block, the 1×1 shortcuts) and
//! every linear head. Not counted: batch norm, ReLU, pooling and the residual additions (well
//! under 1 % of the total), as `thop`-style counters do. A training step costs about three
//! forward passes (forward, input gradient, weight gradient).
//!
//! ```
//! use dia_encoder::{macs::encoder_macs, Arch, EncoderConfig};
//! // torchvision's ResNet-18 at 224 px is the well-known 1.82 GMACs (its 1000-class head
//! // included); ours has the CSI heads instead.
//! let m = encoder_macs(&EncoderConfig::new(Arch::ResNet18ImageNet), 224);
//! assert!((1.80e9..1.83e9).contains(&(m as f64)));
//! ```

use crate::resnet::{Arch, EncoderConfig};

/// Output side of a convolution or pooling window.
fn out_side(side: usize, k: usize, stride: usize, pad: usize) -> usize {
    (side + 2 * pad).saturating_sub(k) / stride + 1
}

fn conv(cin: usize, cout: usize, k: usize, side_out: usize) -> u64 {
    (cin * cout * k * k * side_out * side_out) as u64
}

/// MACs of one forward pass of the encoder `cfg` on one `size`×`size` image.
pub fn encoder_macs(cfg: &EncoderConfig, size: usize) -> u64 {
    let w = cfg.width;
    let imagenet = cfg.arch == Arch::ResNet18ImageNet;
    let (k1, s1, p1) = if imagenet { (7, 2, 3) } else { (3, 1, 1) };
    let mut side = out_side(size, k1, s1, p1);
    let mut m = conv(3, w, k1, side);
    if imagenet {
        side = out_side(side, 3, 2, 1); // the 3×3/2 max-pool
    }
    let mut cin = w;
    for (stage, mult) in [1usize, 2, 4, 8].into_iter().enumerate() {
        let cout = w * mult;
        for j in 0..2 {
            let stride = if stage > 0 && j == 0 { 2 } else { 1 };
            let out = out_side(side, 3, stride, 1);
            m += conv(cin, cout, 3, out) + conv(cout, cout, 3, out);
            if stride != 1 || cin != cout {
                m += conv(cin, cout, 1, out);
            }
            side = out;
            cin = cout;
        }
    }
    let last = cfg.last_dim();
    let heads = last * cfg.num_classes
        + last * last
        + last * cfg.simclr_dim
        + last * cfg.k_shift
        + last * 4 * cfg.num_classes;
    m + heads as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cifar_stem_at_32_px_counts_every_layer() {
        // Width 1 by hand: stem 3·1·9·1024; stage 1: 4 convs 1·1·9·1024; stage 2 (16×16):
        // 1·2·9·256 + 2·2·9·256 (+ 1×1 1·2·256), then 2 × 2·2·9·256; likewise down to 4×4.
        let cfg = EncoderConfig {
            width: 1,
            ..EncoderConfig::new(Arch::ResNet18)
        };
        let mut want = 3 * 9 * 1024 + 4 * 9 * 1024;
        let mut cin = 1;
        for (c, hw) in [(2, 256), (4, 64), (8, 16)] {
            want += cin * c * 9 * hw + c * c * 9 * hw + cin * c * hw + 2 * c * c * 9 * hw;
            cin = c;
        }
        want += 8 * 2 + 8 * 8 + 8 * 128 + 8 * 4 + 8 * 8;
        assert_eq!(encoder_macs(&cfg, 32), want as u64);
    }

    #[test]
    fn the_imagenet_stem_quarters_the_side() {
        // 64 px: the 7×7/2 stem gives 32×32, the max-pool 16×16, the last stage 2×2.
        let cfg = EncoderConfig::new(Arch::ResNet18ImageNet);
        let stem = conv(3, 64, 7, 32);
        let first_stage = 4 * conv(64, 64, 3, 16);
        let body = encoder_macs(&cfg, 64) - stem - first_stage;
        // Stages 2–4 at 8, 4, 2 px: the same count as the CIFAR body at half the side.
        let cifar = encoder_macs(&EncoderConfig::new(Arch::ResNet18), 32);
        let cifar_body = cifar - conv(3, 64, 3, 32) - 4 * conv(64, 64, 3, 32);
        assert_eq!(
            body * 4,
            cifar_body
                + 3 * {
                    // The heads are not per pixel, so they do not scale with the area.
                    let last = 512;
                    (last * 2 + last * last + last * 128 + last * 4 + last * 8) as u64
                }
        );
    }
}
