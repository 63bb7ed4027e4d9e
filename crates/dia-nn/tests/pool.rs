//! Max pooling against a naive reference and candle's pool, on the fast and the portable
//! path.

mod common;
use common::hold_isa_from_env;

use candle_core::{Device, Tensor, Var};
use dia_nn::init::uniform;
use dia_nn::{max_pool2d, with_kernel_policy, KernelPolicy, MaxPoolConfig};
use rand::SeedableRng;

/// Naive pool: output values and, for loss = Σ y·r, the input gradient (first maximum wins).
fn naive(
    x: &[f32],
    r: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cfg: MaxPoolConfig,
) -> (Vec<f32>, Vec<f32>) {
    let ho = (h + 2 * cfg.padding - cfg.kernel) / cfg.stride + 1;
    let wo = (w + 2 * cfg.padding - cfg.kernel) / cfg.stride + 1;
    let mut y = vec![0f32; n * ho * wo];
    let mut dx = vec![0f32; n * h * w];
    for p in 0..n {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut best = (f32::NEG_INFINITY, 0usize);
                for ky in 0..cfg.kernel {
                    for kx in 0..cfg.kernel {
                        let (iy, ix) = (
                            (oy * cfg.stride + ky) as isize - cfg.padding as isize,
                            (ox * cfg.stride + kx) as isize - cfg.padding as isize,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let i = p * h * w + iy as usize * w + ix as usize;
                            if x[i] > best.0 {
                                best = (x[i], i);
                            }
                        }
                    }
                }
                let o = (p * ho + oy) * wo + ox;
                y[o] = best.0;
                dx[best.1] += r[o];
            }
        }
    }
    (y, dx)
}

#[test]
fn forward_and_backward_match_the_naive_pool() {
    hold_isa_from_env();
    // The portable pool (what a GPU runs) must give the first maximum all of the gradient too.
    for policy in [KernelPolicy::Fast, KernelPolicy::Portable] {
        with_kernel_policy(policy, both_passes_match_the_naive_pool);
    }
}

fn both_passes_match_the_naive_pool() {
    let dev = Device::Cpu;
    let configs = [
        MaxPoolConfig::RESNET_STEM,
        MaxPoolConfig {
            kernel: 2,
            stride: 2,
            padding: 0,
        },
        MaxPoolConfig {
            kernel: 3,
            stride: 1,
            padding: 1,
        },
        MaxPoolConfig {
            kernel: 5,
            stride: 3,
            padding: 2,
        },
    ];
    for (i, cfg) in configs.into_iter().enumerate() {
        // Planes narrower than the stride and the window too (empty column phases).
        let sizes = [
            (8, 8),
            (9, 7),
            (32, 32),
            (5, 5),
            (3, 75),
            (56, 2),
            (1, 1),
            (7, 1),
            (2, 9),
        ];
        for (h, w) in sizes {
            if h.min(w) + 2 * cfg.padding < cfg.kernel {
                continue; // no window fits (an error; invalid_configs_are_errors)
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            // Quantised values so ties occur: the first maximum must get the gradient.
            let x0 = uniform((2, 3, h, w), 4.0, &mut rng, &dev)
                .unwrap()
                .round()
                .unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let y = max_pool2d(x.as_tensor(), cfg).unwrap();
            let r = uniform(y.dims(), 1.0, &mut rng, &dev).unwrap();
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let xv: Vec<f32> = x0.flatten_all().unwrap().to_vec1().unwrap();
            let rv: Vec<f32> = r.flatten_all().unwrap().to_vec1().unwrap();
            let (want_y, want_dx) = naive(&xv, &rv, 6, h, w, cfg);
            assert_eq!(
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want_y,
                "{cfg:?} {h}x{w}"
            );
            let dx: Vec<f32> = grads
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in dx.iter().zip(&want_dx) {
                assert!((a - b).abs() <= 1e-6, "{cfg:?} {h}x{w}: {a} vs {b}");
            }
        }
    }
}

/// candle 0.11's max-pool backward multiplies the gradient by (number of maxima) / k² where it
/// should divide by the number of maxima (`backprop.rs`, `Op::MaxPool2D`): a unique maximum of
/// a 2×2 window gets a quarter of its gradient. The forward passes agree exactly; the gradients
/// differ by exactly that factor, and ours is PyTorch's (checked against the naive pool above).
#[test]
fn agrees_with_candle_forward_and_exposes_its_backward_scaling() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let x = Var::from_tensor(&uniform((2, 4, 8, 8), 1.0, &mut rng, &dev).unwrap()).unwrap();
    let cfg = MaxPoolConfig {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let ours = max_pool2d(x.as_tensor(), cfg).unwrap();
    let theirs = x.as_tensor().max_pool2d(2).unwrap();
    let d = (&ours - &theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
    let go = ours.sum_all().unwrap().backward().unwrap();
    let gt = theirs.sum_all().unwrap().backward().unwrap();
    // Random values: every window has a unique maximum, so candle's gradient is ours / 4.
    let scaled = (gt.get(x.as_tensor()).unwrap() * 4.0).unwrap();
    let d = (go.get(x.as_tensor()).unwrap() - scaled)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
}

#[test]
fn invalid_configs_are_errors() {
    let x = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(max_pool2d(
        &x,
        MaxPoolConfig {
            kernel: 5,
            stride: 1,
            padding: 0
        }
    )
    .is_err());
    assert!(max_pool2d(
        &x,
        MaxPoolConfig {
            kernel: 2,
            stride: 0,
            padding: 0
        }
    )
    .is_err());
    assert!(max_pool2d(
        &x,
        MaxPoolConfig {
            kernel: 3,
            stride: 1,
            padding: 2
        }
    )
    .is_err());
    // A window's offsets are kept in two bytes: a wider window is an error, not a wrong pool.
    let wide = Tensor::zeros((1, 1, 257, 257), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = max_pool2d(
        &wide,
        MaxPoolConfig {
            kernel: 257,
            stride: 1,
            padding: 0,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn nan_wins_the_window_and_the_last_nan_gets_the_gradient() {
    hold_isa_from_env();
    // PyTorch's kernel: `val > max || isnan(val)` replaces the maximum, so a NaN beats any
    // number and a later NaN beats an earlier one.
    let dev = Device::Cpu;
    let x = Var::from_slice(&[1.0f32, f32::NAN, 3.0, f32::NAN], (1, 1, 2, 2), &dev).unwrap();
    let cfg = MaxPoolConfig {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let y = max_pool2d(x.as_tensor(), cfg).unwrap();
    assert!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0].is_nan());
    let grads = y.sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap();
    assert_eq!(
        dx.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [0.0, 0.0, 0.0, 1.0]
    );
}

/// The ImageNet stem's pool at 224 px (batch 64), for development:
/// `cargo test --release -p dia-nn --test pool -- --ignored --nocapture stem_pool_timing`.
#[test]
#[ignore]
fn stem_pool_timing() {
    dia_nn::tune_allocator();
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x = Var::from_tensor(&uniform((64, 64, 112, 112), 1.0, &mut rng, &dev).unwrap()).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let y = max_pool2d(x.as_tensor(), MaxPoolConfig::RESNET_STEM).unwrap();
        let t1 = t.elapsed();
        let grads = y.sum_all().unwrap().backward().unwrap();
        drop(grads);
        println!("forward {t1:?}, forward + backward {:?}", t.elapsed());
    }
}
