//! BatchNorm2d against the formula written with candle ops and differentiated by candle's
//! autograd; running estimates against PyTorch's update rule.

mod common;
use common::rel_diff;

use candle_core::{Device, Tensor, Var};
use dia_nn::init::uniform;
use dia_nn::BatchNorm2d;
use rand::SeedableRng;

/// Training-mode batch norm written with candle ops.
fn reference(x: &Tensor, g: &Tensor, b: &Tensor, relu: bool) -> Tensor {
    let c = g.elem_count();
    let mean = x.mean_keepdim((0, 2, 3)).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
    let y = xc
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&g.reshape((1, c, 1, 1)).unwrap())
        .unwrap()
        .broadcast_add(&b.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    if relu {
        y.relu().unwrap()
    } else {
        y
    }
}

#[test]
fn training_forward_and_gradients_match_autograd() {
    let dev = Device::Cpu;
    for (i, &(n, c, h, w)) in [(4, 3, 5, 7), (2, 8, 16, 16), (64, 4, 1, 1), (1, 2, 3, 3)]
        .iter()
        .enumerate()
    {
        for relu in [false, true] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            // Offset and scaled inputs, so mean and variance matter.
            let x0 = (uniform((n, c, h, w), 2.0, &mut rng, &dev).unwrap() + 3.0).unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let g = Var::from_tensor(&(uniform(c, 0.5, &mut rng, &dev).unwrap() + 1.0).unwrap())
                .unwrap();
            let b = Var::from_tensor(&uniform(c, 0.5, &mut rng, &dev).unwrap()).unwrap();
            let bn = BatchNorm2d::from_tensors(
                g.as_tensor().clone(),
                b.as_tensor().clone(),
                Tensor::zeros(c, candle_core::DType::F32, &dev).unwrap(),
                Tensor::ones(c, candle_core::DType::F32, &dev).unwrap(),
                0,
            )
            .unwrap();
            let ours = if relu {
                bn.forward_relu_t(x.as_tensor(), true)
            } else {
                bn.forward_t(x.as_tensor(), true)
            }
            .unwrap();
            let want = reference(x.as_tensor(), g.as_tensor(), b.as_tensor(), relu);
            let label = format!("{n}x{c}x{h}x{w} relu={relu}");
            assert!(
                rel_diff(&ours, &want) <= 1e-4,
                "{label}: forward {}",
                rel_diff(&ours, &want)
            );
            let r = uniform(ours.dims(), 1.0, &mut rng, &dev).unwrap();
            let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gw = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("dx", &x), ("dgamma", &g), ("dbeta", &b)] {
                let d = rel_diff(
                    go.get(v.as_tensor()).unwrap(),
                    gw.get(v.as_tensor()).unwrap(),
                );
                assert!(d <= 1e-4, "{label}: {name} differs by {d}");
            }
        }
    }
}

#[test]
fn running_estimates_follow_pytorch() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let bn = BatchNorm2d::new(3, &dev).unwrap();
    let mut rm = [0f64; 3];
    let mut rv = [1f64; 3];
    for _ in 0..3 {
        let x = (uniform((5, 3, 4, 4), 1.0, &mut rng, &dev).unwrap() * 3.0).unwrap();
        bn.forward_t(&x, true).unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        for c in 0..3 {
            let vals: Vec<f64> = (0..5)
                .flat_map(|b| v[(b * 3 + c) * 16..][..16].iter().map(|&a| a as f64))
                .collect();
            let m = vals.iter().sum::<f64>() / 80.0;
            let unbiased = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 79.0;
            rm[c] = 0.9 * rm[c] + 0.1 * m;
            rv[c] = 0.9 * rv[c] + 0.1 * unbiased;
        }
    }
    let got_m = bn.running_mean().to_vec1::<f32>().unwrap();
    let got_v = bn.running_var().to_vec1::<f32>().unwrap();
    for c in 0..3 {
        assert!(
            (got_m[c] as f64 - rm[c]).abs() < 1e-5,
            "mean {c}: {} vs {}",
            got_m[c],
            rm[c]
        );
        assert!(
            (got_v[c] as f64 - rv[c]).abs() < 1e-5,
            "var {c}: {} vs {}",
            got_v[c],
            rv[c]
        );
    }
    assert_eq!(bn.num_batches_tracked(), 3);

    // Evaluation uses the running estimates and leaves them alone.
    let x = uniform((2, 3, 4, 4), 1.0, &mut rng, &dev).unwrap();
    let y = bn.forward_t(&x, false).unwrap();
    let scale: Vec<f64> = rv.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let yv: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    for (i, (a, b)) in xv.iter().zip(&yv).enumerate() {
        let c = (i / 16) % 3;
        assert!(((*a as f64 - rm[c]) * scale[c] - *b as f64).abs() < 1e-5);
    }
    assert_eq!(bn.num_batches_tracked(), 3);
    let relu = bn.forward_relu_t(&x, false).unwrap();
    assert_eq!(
        relu.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        yv.iter().map(|v| v.max(0.0)).collect::<Vec<_>>()
    );
}

#[test]
fn wrong_channel_count_is_an_error() {
    let dev = Device::Cpu;
    let bn = BatchNorm2d::new(3, &dev).unwrap();
    let x = Tensor::zeros((1, 4, 2, 2), candle_core::DType::F32, &dev).unwrap();
    assert!(bn
        .forward_t(&x, true)
        .unwrap_err()
        .to_string()
        .contains("3 channels"));
    let bad = BatchNorm2d::from_tensors(
        Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
        Tensor::ones(2, candle_core::DType::F32, &dev).unwrap(),
        Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
        Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
        0,
    );
    assert!(bad.unwrap_err().to_string().contains("bias"));
}

#[test]
fn evaluation_mode_gradients_match_autograd() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let c = 5;
    let x = Var::from_tensor(&uniform((3, c, 4, 6), 2.0, &mut rng, &dev).unwrap()).unwrap();
    let g = Var::from_tensor(&(uniform(c, 0.5, &mut rng, &dev).unwrap() + 1.0).unwrap()).unwrap();
    let b = Var::from_tensor(&uniform(c, 0.5, &mut rng, &dev).unwrap()).unwrap();
    let rm = uniform(c, 1.0, &mut rng, &dev).unwrap();
    let rv = (uniform(c, 0.5, &mut rng, &dev).unwrap() + 1.0).unwrap();
    let bn = BatchNorm2d::from_tensors(
        g.as_tensor().clone(),
        b.as_tensor().clone(),
        rm.clone(),
        rv.clone(),
        0,
    )
    .unwrap();
    for relu in [false, true] {
        let ours = if relu {
            bn.forward_relu_t(x.as_tensor(), false)
        } else {
            bn.forward_t(x.as_tensor(), false)
        }
        .unwrap();
        let scale = (g.as_tensor() / (&rv + 1e-5).unwrap().sqrt().unwrap()).unwrap();
        let shift = (b.as_tensor() - (&rm * &scale).unwrap()).unwrap();
        let mut want = x
            .as_tensor()
            .broadcast_mul(&scale.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&shift.reshape((1, c, 1, 1)).unwrap())
            .unwrap();
        if relu {
            want = want.relu().unwrap();
        }
        assert!(rel_diff(&ours, &want) <= 1e-5);
        let r = uniform(ours.dims(), 1.0, &mut rng, &dev).unwrap();
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gw = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("dx", &x), ("dgamma", &g), ("dbeta", &b)] {
            let d = rel_diff(
                go.get(v.as_tensor()).unwrap(),
                gw.get(v.as_tensor()).unwrap(),
            );
            assert!(d <= 1e-4, "relu={relu}: {name} differs by {d}");
        }
    }
}

#[test]
fn add_relu_matches_candle_ops_with_gradients() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    for shape in [(2usize, 3usize, 5usize, 7usize), (64, 4, 16, 17)] {
        let a = Var::from_tensor(&uniform(shape, 1.0, &mut rng, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&uniform(shape, 1.0, &mut rng, &dev).unwrap()).unwrap();
        let ours = dia_nn::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let want = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
        assert_eq!(rel_diff(&ours, &want), 0.0);
        let r = uniform(ours.dims(), 1.0, &mut rng, &dev).unwrap();
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gw = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&a, &b] {
            assert_eq!(
                rel_diff(
                    go.get(v.as_tensor()).unwrap(),
                    gw.get(v.as_tensor()).unwrap()
                ),
                0.0
            );
        }
    }
    let x = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
    let y = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
    assert!(dia_nn::add_relu(&x, &y).is_err());
}
