//! The filter side of Winograd F(4×4, 3×3): `U = G g Gᵀ` for the forward pass (and, with the
//! kernel flipped and its channel axes swapped, for the input gradient), and `dg = Gᵀ dU G`,
//! which brings a gradient in the transformed domain back to the 3 × 3 kernel.
//!
//! Both work on 16 output channels at a time on AVX-512 vectors ([`transforms::filter_tile`],
//! [`transforms::filter_grad_tile`]), with multiplications by the reciprocals, not divisions
//! (a division per term made this pass as slow as the convolution it feeds).

use rayon::prelude::*;

use super::{transforms, LANES, XI};
use crate::microkernel::BT_MR;
use crate::scratch::Scratch;

/// `U = G g Gᵀ` for every kernel (k, c) of `w`, packed as `tile_bt` A panels:
/// `[k/64][ξ][c][64]`, zero past `cout`.
///
/// `w` is `(cout, cin, 3, 3)`; with `flip` it is `(cin, cout, 3, 3)` and kernel (k, c) is
/// `w[c][k]` rotated by 180° — the kernel of the input gradient as a forward convolution.
///
/// Kernels are read 16 output channels at a time and transposed in registers
/// ([`transforms::block_row`]) so that the transform runs on whole vectors; every element of
/// the result is written (zero kernels past `cout`), so it can live in a [`Scratch`] buffer.
pub(super) fn transform(w: &[f32], cout: usize, cin: usize, flip: bool) -> Scratch {
    assert_eq!(w.len(), cout * cin * 9, "winograd: weight size");
    let mut u = Scratch::take(cout.div_ceil(BT_MR) * XI * cin * BT_MR);
    u.par_chunks_mut(XI * cin * BT_MR)
        .enumerate()
        .for_each(|(kt, ut)| {
            // 16 input channels × 9 taps × 16 output channels.
            let mut g = [0f32; LANES * 9 * LANES];
            for m0 in (0..BT_MR).step_by(LANES) {
                let k0 = kt * BT_MR + m0;
                let lanes = cout.saturating_sub(k0).min(LANES);
                for c0 in (0..cin).step_by(LANES) {
                    let nc = LANES.min(cin - c0);
                    if flip {
                        // Kernel (k, c) is w[c][k]: for each c the 16 kernels are 144
                        // consecutive floats, [k][tap].
                        for (c, gc) in g.chunks_mut(9 * LANES).take(nc).enumerate() {
                            let rows: [Option<&[f32]>; LANES] = std::array::from_fn(|l| {
                                let k = k0 + l;
                                (l < lanes).then(|| &w[((c0 + c) * cout + k) * 9..][..9])
                            });
                            transforms::block_row(&rows, 9, gc, LANES);
                        }
                    } else {
                        // Kernel (k, c) is w[k][c]: for each k the kernels of c0.. are
                        // consecutive, [c][tap].
                        let rows: [Option<&[f32]>; LANES] = std::array::from_fn(|l| {
                            let k = k0 + l;
                            (l < lanes).then(|| &w[(k * cin + c0) * 9..][..nc * 9])
                        });
                        transforms::block_row(&rows, nc * 9, &mut g, LANES);
                    }
                    for (c, gc) in g.chunks(9 * LANES).take(nc).enumerate() {
                        let dst = &mut ut[(c0 + c) * BT_MR + m0..];
                        transforms::filter_tile(gc, flip, dst, cin * BT_MR);
                    }
                }
            }
        });
    u
}

/// The kernel gradient `dw (cout, cin, 3, 3)` from its transform `du`, laid out
/// `[ξ][k/64][c][64]` as the weight-gradient gemms write it.
pub(super) fn backward(du: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let kpanels = cout.div_ceil(BT_MR);
    assert_eq!(du.len(), XI * kpanels * cin * BT_MR, "winograd: dU size");
    let mut dw = vec![0f32; cout * cin * 9];
    dw.par_chunks_mut(LANES * cin * 9)
        .enumerate()
        .for_each(|(kb, rows)| {
            let k0 = kb * LANES;
            let (kt, m0) = (k0 / BT_MR, k0 % BT_MR);
            for c in 0..cin {
                let src = &du[(kt * cin + c) * BT_MR + m0..];
                let g = transforms::filter_grad_tile(src, kpanels * cin * BT_MR);
                for (l, gl) in g.iter().enumerate().take(cout - k0) {
                    rows[(l * cin + c) * 9..][..9].copy_from_slice(&gl[..9]);
                }
            }
        });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `backward` is the adjoint of `transform`: ⟨G g Gᵀ, dU⟩ = ⟨g, Gᵀ dU G⟩.
    #[test]
    fn the_backward_transform_is_the_adjoint() {
        if !crate::microkernel::available() {
            return; // the transforms are AVX-512 or AVX2 code
        }
        let (cout, cin): (usize, usize) = (20, 3);
        let w: Vec<f32> = (0..cout * cin * 9)
            .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
            .collect();
        let kpanels = cout.div_ceil(BT_MR);
        let du: Vec<f32> = (0..XI * kpanels * cin * BT_MR)
            .map(|i| ((i * 11) % 17) as f32 / 5.0 - 1.7)
            .collect();
        let u = transform(&w, cout, cin, false);
        let dw = backward(&du, cout, cin);
        // u is [kt][ξ][c][64], du is [ξ][kt][c][64]; padded channels of u are zero.
        let mut lhs = 0f64;
        for kt in 0..kpanels {
            for xi in 0..XI {
                for c in 0..cin {
                    for m in 0..BT_MR {
                        let a = u[((kt * XI + xi) * cin + c) * BT_MR + m] as f64;
                        let b = du[((xi * kpanels + kt) * cin + c) * BT_MR + m] as f64;
                        lhs += a * b;
                    }
                }
            }
        }
        let rhs: f64 = w.iter().zip(&dw).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
