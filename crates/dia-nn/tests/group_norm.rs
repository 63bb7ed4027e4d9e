//! GroupNorm and the weight-standardised conv against direct f64 computations.

use candle_core::{Device, Tensor, Var};
use dia_nn::init::uniform;
use dia_nn::{group_norm, weight_standardized_conv2d, Conv2dConfig};
use rand::SeedableRng;

#[test]
fn group_norm_matches_the_formula() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (n, c, h, w, groups) = (2, 16, 3, 5, 8);
    let x = (uniform((n, c, h, w), 2.0, &mut rng, &dev).unwrap() + 1.0).unwrap();
    let g = uniform(c, 1.0, &mut rng, &dev).unwrap();
    let b = uniform(c, 1.0, &mut rng, &dev).unwrap();
    let y: Vec<f32> = group_norm(&x, groups, Some(&g), Some(&b), 1e-5)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let (gv, bv) = (g.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    let per_group = (c / groups) * h * w;
    for s in 0..n * groups {
        let vals: Vec<f64> = xv[s * per_group..][..per_group]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / per_group as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per_group as f64;
        for (j, v) in vals.iter().enumerate() {
            let i = s * per_group + j;
            let ch = (i / (h * w)) % c;
            let want = (v - mean) / (var + 1e-5).sqrt() * gv[ch] as f64 + bv[ch] as f64;
            assert!((y[i] as f64 - want).abs() < 1e-5, "{i}: {} vs {want}", y[i]);
        }
    }
    assert!(group_norm(&x, 5, None, None, 1e-5).is_err());
}

#[test]
fn weight_standardized_conv_matches_explicit_standardisation_and_has_gradients() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let x = uniform((2, 4, 8, 8), 1.0, &mut rng, &dev).unwrap();
    let w = Var::from_tensor(&uniform((6, 4, 3, 3), 1.0, &mut rng, &dev).unwrap()).unwrap();
    let y = weight_standardized_conv2d(&x, w.as_tensor(), None, Conv2dConfig::new(1, 1)).unwrap();
    // Standardise by hand in f64, then convolve with candle's reference conv.
    let wv: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let mut ws = Vec::new();
    for o in 0..6 {
        let row: Vec<f64> = wv[o * 36..][..36].iter().map(|&v| v as f64).collect();
        let m = row.iter().sum::<f64>() / 36.0;
        let var = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 36.0;
        ws.extend(row.iter().map(|v| ((v - m) / (var + 1e-5).sqrt()) as f32));
    }
    let ws = Tensor::from_vec(ws, (6, 4, 3, 3), &dev).unwrap();
    let want = x.conv2d(&ws, 1, 1, 1, 1).unwrap();
    let d = (&y - &want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "{d}");
    // Gradient of the weight exists and a finite difference agrees with it.
    let loss = |wt: &Tensor| {
        weight_standardized_conv2d(&x, wt, None, Conv2dConfig::new(1, 1))
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss(w.as_tensor()).backward().unwrap();
    let gw: Vec<f32> = grads
        .get(w.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let eps = 1e-2f32;
    for idx in [0usize, 17, 100, 200] {
        let mut plus = wv.clone();
        plus[idx] += eps;
        let mut minus = wv.clone();
        minus[idx] -= eps;
        let lp = loss(&Tensor::from_vec(plus, (6, 4, 3, 3), &dev).unwrap())
            .to_scalar::<f32>()
            .unwrap();
        let lm = loss(&Tensor::from_vec(minus, (6, 4, 3, 3), &dev).unwrap())
            .to_scalar::<f32>()
            .unwrap();
        let fd = (lp - lm) / (2.0 * eps);
        assert!(
            (fd - gw[idx]).abs() <= 0.02 * fd.abs().max(1.0),
            "w[{idx}]: finite difference {fd} vs {}",
            gw[idx]
        );
    }
}

#[test]
fn tune_allocator_applies_on_glibc() {
    assert_eq!(
        dia_nn::tune_allocator(),
        cfg!(all(target_os = "linux", target_env = "gnu"))
    );
}

/// `group_norm_silu` in one pass (nothing records a gradient) against the candle ops it
/// replaces — group norm, `·scale + shift` per (sample, channel), SiLU — to 1e-6 (its `exp` is
/// its own polynomial, within 2 ulp of libm's); and with an input that records one, the
/// differentiable path's values to the bit.
#[test]
fn group_norm_silu_is_group_norm_scale_shift_silu() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for (n, c, h, w, groups) in [(2, 16, 3, 5, 8), (3, 8, 4, 4, 1), (1, 6, 1, 7, 6)] {
        let x = (uniform((n, c, h, w), 2.0, &mut rng, &dev).unwrap() + 0.5).unwrap();
        let g = uniform(c, 1.0, &mut rng, &dev).unwrap();
        let b = uniform(c, 1.0, &mut rng, &dev).unwrap();
        // (N, C, 1, 1), and not contiguous: narrowed out of one (N, 2C) tensor, as the UNet's.
        let ss = uniform((n, 2 * c), 1.0, &mut rng, &dev).unwrap();
        let scale = ss.narrow(1, 0, c).unwrap().reshape((n, c, 1, 1)).unwrap();
        let shift = ss.narrow(1, c, c).unwrap().reshape((n, c, 1, 1)).unwrap();
        for film in [None, Some((&scale, &shift))] {
            let fused = dia_nn::group_norm_silu(&x, groups, &g, &b, film, 1e-5).unwrap();
            let y = group_norm(&x, groups, Some(&g), Some(&b), 1e-5).unwrap();
            let y = match film {
                Some((sc, sh)) => y.broadcast_mul(sc).unwrap().broadcast_add(sh).unwrap(),
                None => y,
            };
            let want = y.silu().unwrap();
            let vals = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let at = format!("{n}x{c}x{h}x{w} / {groups}, scale-shift {}", film.is_some());
            let e = dia_nn::kernels::rel_diff(&fused, &want).unwrap();
            assert!(e < 1e-6, "{at}: {e}");
            // An input that records a gradient takes the differentiable path.
            let xv = Var::from_tensor(&x).unwrap();
            let tracked =
                dia_nn::group_norm_silu(xv.as_tensor(), groups, &g, &b, film, 1e-5).unwrap();
            assert_eq!(vals(&tracked), vals(&want), "{at}, tracked");
            let grads = tracked.sum_all().unwrap().backward().unwrap();
            assert!(grads.get(xv.as_tensor()).is_some(), "{at}: no gradient");
        }
    }
    let x = Tensor::zeros((1, 6, 2, 2), candle_core::DType::F32, &dev).unwrap();
    let g = Tensor::ones(6, candle_core::DType::F32, &dev).unwrap();
    assert!(dia_nn::group_norm_silu(&x, 4, &g, &g, None, 1e-5).is_err());
    let bad = Tensor::ones((1, 5, 1, 1), candle_core::DType::F32, &dev).unwrap();
    assert!(dia_nn::group_norm_silu(&x, 3, &g, &g, Some((&bad, &bad)), 1e-5).is_err());
}
