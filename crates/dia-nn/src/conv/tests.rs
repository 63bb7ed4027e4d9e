//! The fast convolution paths against the portable gemm path, and per-layer timings.

use super::*;
use rand::{Rng, SeedableRng};

fn geom_of(
    n: usize,
    cin: usize,
    cout: usize,
    hw: (usize, usize),
    k: usize,
    s: usize,
    p: usize,
) -> ConvGeom {
    geom(
        &[n, cin, hw.0, hw.1],
        &[cout, cin, k, k],
        &Conv2dConfig::new(s, p),
    )
    .unwrap()
}

/// Random input, weights and output gradient for `g`, uniform in [−1, 1).
fn operands(g: &ConvGeom, rng: &mut impl Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut fill =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let x = fill(g.n * g.cin * g.h * g.w);
    let w = fill(g.cout * g.k());
    let dy = fill(g.n * g.cout * g.hw_out());
    (x, w, dy)
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The vector-tile passes (AVX-512, or AVX2 where that is what the CPU has) against the
/// portable gemm passes, on shapes that exercise both tile
/// kinds (direct rows ≥ 16 wide, broadcast tiles for strided or narrow layers), ragged
/// tiles, channel counts that are not multiples of 8, weight gradients split by images (over
/// 1024 output pixels) and by taps (fewer), and an empty batch.
#[test]
fn the_tile_path_matches_the_gemm_path() {
    let shapes = [
        (2, 3, 64, (32, 32), 3, 1, 1),
        (3, 16, 24, (20, 17), 3, 1, 1),
        (2, 8, 13, (9, 9), 3, 2, 1),
        (2, 5, 7, (11, 13), 1, 2, 0),
        (1, 4, 9, (23, 19), 7, 2, 3),
        (2, 6, 10, (8, 8), 3, 1, 1),
        (4, 32, 16, (4, 4), 3, 1, 1),
        (2, 3, 5, (18, 18), 5, 1, 0),
        (2, 4, 6, (17, 16), 1, 1, 0),
        (0, 4, 8, (9, 9), 3, 2, 1),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (n, cin, cout, hw, k, s, p) in shapes {
        let g = geom_of(n, cin, cout, hw, k, s, p);
        if !g.fits_tiles() {
            return; // no vector tiles on this CPU: nothing to compare
        }
        let (x, w, dy) = operands(&g, &mut rng);
        let what = format!("n{n} {cin}->{cout} {hw:?} k{k} s{s} p{p}");
        let e = max_rel(
            &fastconv::forward(&x, &w, &g),
            &forward_gemm(&x, &w, &g, 1 << 20),
        );
        assert!(e < 1e-5, "forward {what}: {e}");
        let e = max_rel(
            &fastconv::backward_weight(&x, &dy, &g),
            &backward_weight_gemm(&x, &dy, &g),
        );
        assert!(e < 1e-5, "weight grad {what}: {e}");
        if fastconv::input_grad_supported(&g) {
            let e = max_rel(
                &fastconv::backward_input(&dy, &w, &g),
                &backward_input_gemm(&dy, &w, &g, 1 << 20),
            );
            assert!(e < 1e-5, "input grad {what}: {e}");
        }
    }
}

/// Winograd F(4×4, 3×3) against the portable gemm path, all three passes: tiles cut by the
/// edges (sizes not multiples of 4), padding 0/1/2, channel counts that are not multiples
/// of 16 or 64, blocks of tile rows that do not divide the image (44 × 40 at 64 channels),
/// weights large enough for the all-tiles-at-once schedule, and an empty batch.
#[test]
fn winograd_matches_the_gemm_path() {
    let shapes = [
        (2, 16, 64, (32, 32), 1),
        (3, 16, 24, (20, 17), 1),
        (2, 17, 20, (9, 11), 1),
        (2, 18, 16, (7, 6), 0),
        (2, 19, 33, (5, 8), 2),
        (4, 32, 16, (4, 4), 1),
        (2, 70, 130, (6, 6), 1),
        (2, 64, 48, (44, 40), 1),
        (3, 200, 100, (5, 7), 1),
        (0, 16, 16, (8, 8), 1),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for (n, cin, cout, hw, p) in shapes {
        let g = geom_of(n, cin, cout, hw, 3, 1, p);
        if !crate::winograd::applies(&g) {
            return; // no vector tiles on this CPU (or turned off): nothing to compare
        }
        let (x, w, dy) = operands(&g, &mut rng);
        let what = format!("n{n} {cin}->{cout} {hw:?} p{p}");
        let ef = max_rel(
            &crate::winograd::forward(&x, &w, &g),
            &forward_gemm(&x, &w, &g, 1 << 20),
        );
        assert!(ef < 5e-5, "forward {what}: {ef}");
        let ei = max_rel(
            &backward_input(&dy, &w, &g, 1 << 20),
            &backward_input_gemm(&dy, &w, &g, 1 << 20),
        );
        assert!(ei < 5e-5, "input grad {what}: {ei}");
        let ew = max_rel(
            &crate::winograd::backward_weight(&x, &dy, &g),
            &backward_weight_gemm(&x, &dy, &g),
        );
        assert!(ew < 5e-5, "weight grad {what}: {ew}");
        eprintln!("{what}: forward {ef:.1e}, input grad {ei:.1e}, weight grad {ew:.1e}");
    }
}

/// A frozen layer's forward is bit-equal to the unfrozen one, transforms its filters on the
/// first call only (a second call with other weights still gets the first ones: what
/// `Conv2d::freeze` promises never happens), and a variable's layer is never frozen.
#[test]
fn frozen_filters_are_kept_from_the_first_call() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let g = geom_of(3, 32, 48, (8, 8), 3, 1, 1);
    let (x, w, _) = operands(&g, &mut rng);
    let frozen = FrozenFilter::default();
    let plain = forward(&x, &w, &g, 1 << 20, None);
    assert_eq!(forward(&x, &w, &g, 1 << 20, Some(&frozen)), plain);
    let winograd = crate::winograd::applies(&g);
    assert_eq!(frozen.is_ready(), winograd);
    if winograd {
        let g1 = geom_of(1, 32, 48, (8, 8), 3, 1, 1);
        let zeros = vec![0f32; w.len()];
        let kept = forward(
            &x[..g1.n * g1.cin * 64],
            &zeros,
            &g1,
            1 << 20,
            Some(&frozen),
        );
        assert_eq!(kept, plain[..g1.n * g1.cout * 64]);
    }
    let dev = candle_core::Device::Cpu;
    let wt = Tensor::from_vec(w, (48, 32, 3, 3), &dev).unwrap();
    assert!(Conv2d::new(wt.clone(), None, Conv2dConfig::new(1, 1))
        .freeze()
        .frozen
        .is_some());
    let var = candle_core::Var::from_tensor(&wt).unwrap();
    let layer = Conv2d::new(var.as_tensor().clone(), None, Conv2dConfig::new(1, 1)).freeze();
    assert!(layer.frozen.is_none());
}

/// Per-layer timings of the three passes on the ResNet-18 (CIFAR) shapes at batch 64, for
/// development: `cargo test --release -p dia-nn --lib -- --ignored --nocapture layer_timings`
/// (`DIA_LAYERS=imagenet` for the ImageNet stem on 64×64 images, `imagenet224` on 224×224).
#[test]
#[ignore]
fn layer_timings() {
    crate::tune_allocator();
    // DIA_KERNELS (or DIA_NO_WINOGRAD / DIA_NO_AVX512) picks the kernels to time.
    crate::set_kernel_policy(crate::KernelPolicy::from_env().expect("a known DIA_KERNELS"));
    let cifar = [
        (3, 64, 32, 3, 1, 1, 1),
        (64, 64, 32, 3, 1, 1, 4),
        (64, 128, 32, 3, 2, 1, 1),
        (64, 128, 32, 1, 2, 0, 1),
        (128, 128, 16, 3, 1, 1, 3),
        (128, 256, 16, 3, 2, 1, 1),
        (128, 256, 16, 1, 2, 0, 1),
        (256, 256, 8, 3, 1, 1, 3),
        (256, 512, 8, 3, 2, 1, 1),
        (256, 512, 8, 1, 2, 0, 1),
        (512, 512, 4, 3, 1, 1, 3),
    ];
    // `DIA_LAYERS=imagenet`: the ImageNet stem on 64×64 images (7×7/2 conv, then a 3×3/2 pool).
    let imagenet = [
        (3, 64, 64, 7, 2, 3, 1),
        (64, 64, 16, 3, 1, 1, 4),
        (64, 128, 16, 3, 2, 1, 1),
        (64, 128, 16, 1, 2, 0, 1),
        (128, 128, 8, 3, 1, 1, 3),
        (128, 256, 8, 3, 2, 1, 1),
        (128, 256, 8, 1, 2, 0, 1),
        (256, 256, 4, 3, 1, 1, 3),
        (256, 512, 4, 3, 2, 1, 1),
        (256, 512, 4, 1, 2, 0, 1),
        (512, 512, 2, 3, 1, 1, 3),
    ];
    // `DIA_LAYERS=imagenet224`: the same at the paper's 224 × 224 (maps 112, then 56 to 7).
    let imagenet224 = imagenet.map(|(cin, cout, hw, k, s, p, n)| {
        let hw = if hw == 64 { 224 } else { hw * 7 / 2 };
        (cin, cout, hw, k, s, p, n)
    });
    let layers = match std::env::var("DIA_LAYERS").as_deref() {
        Ok("imagenet") => imagenet,
        Ok("imagenet224") => imagenet224,
        _ => cifar,
    };
    let time = |f: &mut dyn FnMut()| {
        f();
        let mut ts: Vec<f64> = (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        ts[2]
    };
    let mut tot = [0f64; 3];
    let only: Option<usize> = std::env::var("DIA_LAYER_CIN")
        .ok()
        .and_then(|v| v.parse().ok());
    for (cin, cout, hw, k, s, p, count) in layers {
        if only.is_some_and(|c| c != cin || k != 3 || s != 1) {
            continue;
        }
        let g = geom_of(64, cin, cout, (hw, hw), k, s, p);
        let x = vec![0.5f32; 64 * cin * hw * hw];
        let w = vec![0.25f32; cout * g.k()];
        let dy = vec![0.1f32; 64 * cout * g.hw_out()];
        let t = [
            time(&mut || drop(forward(&x, &w, &g, DEFAULT_COL_BUDGET, None))),
            time(&mut || drop(backward_input(&dy, &w, &g, DEFAULT_COL_BUDGET))),
            time(&mut || drop(backward_weight(&x, &dy, &g))),
        ];
        let gflop = 2.0 * (64 * cout * g.hw_out() * g.k()) as f64 / 1e9;
        println!(
            "{cin:>3}->{cout:<3} k{k} s{s} {hw:>2}px x{count}: fwd {:6.2} ms ({:3.0} GF/s) in {:6.2} ms ({:3.0}) w {:6.2} ms ({:3.0})",
            t[0] * 1e3, gflop / t[0], t[1] * 1e3, gflop / t[1], t[2] * 1e3, gflop / t[2]
        );
        for i in 0..3 {
            tot[i] += t[i] * count as f64;
        }
    }
    println!(
        "total: fwd {:.1} ms, input grad {:.1} ms, weight grad {:.1} ms",
        tot[0] * 1e3,
        tot[1] * 1e3,
        tot[2] * 1e3
    );
}
