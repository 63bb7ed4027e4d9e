//! The filter side of Winograd F(4×4, 3×3): `U = G g Gᵀ` for the forward pass (and, with the
//! kernel flipped and its channel axes swapped, for the input gradient), and `dg = Gᵀ dU G`,
//! which brings a gradient in the transformed domain back to the 3 × 3 kernel.
//!
//! Both work on 16 output channels at a time, as plain loops over 16 lanes that the compiler
//! vectorises; they use multiplications by the reciprocals, not divisions (a division per term
//! made this pass as slow as the convolution it feeds).

use rayon::prelude::*;

use super::{LANES, XI};
use crate::microkernel::BT_MR;

type Lanes = [f32; LANES];

/// The rows of G (6 × 3), applied to one column (a, b, c) of 16 kernels.
fn g_col(a: &Lanes, b: &Lanes, c: &Lanes) -> [Lanes; 6] {
    let mut r = [[0f32; LANES]; 6];
    for l in 0..LANES {
        let (a, b, c) = (a[l], b[l], c[l]);
        r[0][l] = a * 0.25;
        r[1][l] = (a + b + c) * (-1.0 / 6.0);
        r[2][l] = (a - b + c) * (-1.0 / 6.0);
        r[3][l] = a * (1.0 / 24.0) + b * (1.0 / 12.0) + c * (1.0 / 6.0);
        r[4][l] = a * (1.0 / 24.0) - b * (1.0 / 12.0) + c * (1.0 / 6.0);
        r[5][l] = c;
    }
    r
}

/// The rows of Gᵀ (3 × 6), applied to one column of six transformed values of 16 kernels.
fn gt_col(u: [&Lanes; 6]) -> [Lanes; 3] {
    let mut r = [[0f32; LANES]; 3];
    for l in 0..LANES {
        let [u0, u1, u2, u3, u4, u5] = u.map(|v| v[l]);
        r[0][l] = u0 * 0.25 - (u1 + u2) * (1.0 / 6.0) + (u3 + u4) * (1.0 / 24.0);
        r[1][l] = (u2 - u1) * (1.0 / 6.0) + (u3 - u4) * (1.0 / 12.0);
        r[2][l] = (u3 + u4 - u1 - u2) * (1.0 / 6.0) + u5;
    }
    r
}

/// `G g Gᵀ` of 16 kernels (`g[tap][lane]`, taps row-major); `[ξ][lane]`, ξ = 6a + b.
fn forward16(g: &[Lanes; 9]) -> [Lanes; XI] {
    // Along ky for each column kx, then along kx for each transformed row.
    let t: [[Lanes; 6]; 3] = std::array::from_fn(|j| g_col(&g[j], &g[3 + j], &g[6 + j]));
    let mut u = [[0f32; LANES]; XI];
    for a in 0..6 {
        for (b, r) in g_col(&t[0][a], &t[1][a], &t[2][a]).into_iter().enumerate() {
            u[6 * a + b] = r;
        }
    }
    u
}

/// `Gᵀ dU G` of 16 transformed gradients (`du[ξ][lane]`); `[tap][lane]`, taps row-major.
fn backward16(du: &[Lanes; XI]) -> [Lanes; 9] {
    // Along a for each column b, then along b for each of the three rows.
    let t: [[Lanes; 3]; 6] =
        std::array::from_fn(|b| gt_col(std::array::from_fn(|a| &du[6 * a + b])));
    let mut g = [[0f32; LANES]; 9];
    for i in 0..3 {
        for (j, r) in gt_col(std::array::from_fn(|b| &t[b][i]))
            .into_iter()
            .enumerate()
        {
            g[3 * i + j] = r;
        }
    }
    g
}

/// `U = G g Gᵀ` for every kernel (k, c) of `w`, packed as `tile_bt` A panels:
/// `[k/64][ξ][c][64]`, zero past `cout`.
///
/// `w` is `(cout, cin, 3, 3)`; with `flip` it is `(cin, cout, 3, 3)` and kernel (k, c) is
/// `w[c][k]` rotated by 180° — the kernel of the input gradient as a forward convolution.
pub(super) fn transform(w: &[f32], cout: usize, cin: usize, flip: bool) -> Vec<f32> {
    assert_eq!(w.len(), cout * cin * 9, "winograd: weight size");
    let mut u = vec![0f32; cout.div_ceil(BT_MR) * XI * cin * BT_MR];
    u.par_chunks_mut(XI * cin * BT_MR)
        .enumerate()
        .for_each(|(kt, ut)| {
            for m0 in (0..BT_MR.min(cout - kt * BT_MR)).step_by(LANES) {
                let k0 = kt * BT_MR + m0;
                for c in 0..cin {
                    let mut g = [[0f32; LANES]; 9];
                    for l in 0..LANES.min(cout - k0) {
                        let k = k0 + l;
                        for (tap, gt) in g.iter_mut().enumerate() {
                            gt[l] = if flip {
                                w[(c * cout + k) * 9 + 8 - tap]
                            } else {
                                w[(k * cin + c) * 9 + tap]
                            };
                        }
                    }
                    for (xi, v) in forward16(&g).iter().enumerate() {
                        ut[(xi * cin + c) * BT_MR + m0..][..LANES].copy_from_slice(v);
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
                let d: [Lanes; XI] = std::array::from_fn(|xi| {
                    let off = ((xi * kpanels + kt) * cin + c) * BT_MR + m0;
                    du[off..][..LANES].try_into().expect("16 lanes")
                });
                let g = backward16(&d);
                for l in 0..LANES.min(cout - k0) {
                    for (tap, gt) in g.iter().enumerate() {
                        rows[(l * cin + c) * 9 + tap] = gt[l];
                    }
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
