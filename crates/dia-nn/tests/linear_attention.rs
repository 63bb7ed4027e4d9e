//! The fused linear attention against the candle ops it replaces (the portable policy) and a
//! naive f64 evaluation of the formula, on every head layout the UNet uses and odd sizes.

use candle_core::{Device, Tensor};
use dia_nn::{kernels::rel_diff, with_kernel_policy, KernelPolicy};
use rand::SeedableRng;

/// The formula in f64, loop by loop: (B, 3·heads·dh, n) in, (B, heads·dh, n) out.
fn naive(x: &[f32], b: usize, heads: usize, dh: usize, n: usize) -> Vec<f64> {
    let hidden = heads * dh;
    let at = |i: usize, part: usize, j: usize, d: usize, p: usize| {
        x[((i * 3 + part) * hidden + j * dh + d) * n + p] as f64
    };
    let mut out = vec![0f64; b * hidden * n];
    for i in 0..b {
        for j in 0..heads {
            // k softmax over pixels, q softmax over features.
            let mut k = vec![vec![0f64; n]; dh];
            for (d, kd) in k.iter_mut().enumerate() {
                let m = (0..n).map(|p| at(i, 1, j, d, p)).fold(f64::MIN, f64::max);
                let s: f64 = (0..n).map(|p| (at(i, 1, j, d, p) - m).exp()).sum();
                for (p, v) in kd.iter_mut().enumerate() {
                    *v = (at(i, 1, j, d, p) - m).exp() / s;
                }
            }
            let mut q = vec![vec![0f64; n]; dh];
            for p in 0..n {
                let m = (0..dh).map(|d| at(i, 0, j, d, p)).fold(f64::MIN, f64::max);
                let s: f64 = (0..dh).map(|d| (at(i, 0, j, d, p) - m).exp()).sum();
                for (d, qd) in q.iter_mut().enumerate() {
                    qd[p] = (at(i, 0, j, d, p) - m).exp() / s / (dh as f64).sqrt();
                }
            }
            for e in 0..dh {
                for p in 0..n {
                    let mut acc = 0f64;
                    for d in 0..dh {
                        let ctx: f64 = (0..n).map(|r| k[d][r] * at(i, 2, j, e, r) / n as f64).sum();
                        acc += ctx * q[d][p];
                    }
                    out[((i * heads + j) * dh + e) * n + p] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn fused_matches_the_candle_ops_and_the_f64_formula() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // (batch, heads, dim_head, h, w): the UNet's 4 × 32 at a small map, odd sizes, one pixel.
    for (b, heads, dh, h, w) in [
        (2, 4, 32, 4, 4),
        (1, 2, 5, 3, 7),
        (3, 1, 8, 1, 1),
        (1, 4, 32, 9, 10),
    ] {
        // Spread of ±4 so the softmaxes are far from uniform.
        let qkv = dia_nn::init::uniform((b, 3 * heads * dh, h, w), 4.0, &mut rng, &dev).unwrap();
        let fused = dia_nn::linear_attention(&qkv, heads, dh).unwrap();
        let ops = with_kernel_policy(KernelPolicy::Portable, || {
            dia_nn::linear_attention(&qkv, heads, dh)
        })
        .unwrap();
        assert_eq!(fused.dims(), [b, heads * dh, h, w]);
        let what = format!("b{b} heads{heads} dh{dh} {h}x{w}");
        let e = rel_diff(&fused, &ops).unwrap();
        assert!(e < 1e-5, "{what}: fused vs candle ops {e}");
        let x = qkv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = naive(&x, b, heads, dh, h * w);
        let want = Tensor::from_vec(want, fused.dims(), &dev).unwrap();
        let fused64 = fused.to_dtype(candle_core::DType::F64).unwrap();
        let e = rel_diff(&fused64, &want).unwrap();
        assert!(e < 1e-5, "{what}: fused vs f64 {e}");
    }
}

#[test]
fn a_tracked_input_takes_the_candle_ops_and_gets_gradients() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let init = dia_nn::init::uniform((1, 12, 3, 3), 1.0, &mut rng, &dev).unwrap();
    let var = candle_core::Var::from_tensor(&init).unwrap();
    let y = dia_nn::linear_attention(var.as_tensor(), 2, 2).unwrap();
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let g = grads.get(var.as_tensor()).expect("a gradient for qkv");
    assert_eq!(g.dims(), [1, 12, 3, 3]);
    let fused = dia_nn::linear_attention(&init, 2, 2).unwrap();
    assert!(rel_diff(&y, &fused).unwrap() < 1e-5);
}

#[test]
fn wrong_channel_counts_are_errors() {
    let x = Tensor::zeros((1, 10, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = dia_nn::linear_attention(&x, 2, 2).unwrap_err().to_string();
    assert!(e.contains("10 channels"), "{e}");
    assert!(dia_nn::linear_attention(&x, 0, 2).is_err());
}
