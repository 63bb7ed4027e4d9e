//! The fused stem op, `BatchNorm2d::forward_relu_pool_t`, against the two ops it replaces
//! (`forward_relu_t`, then `max_pool2d`) on the fast path, and against the portable path:
//! outputs, running estimates and every gradient; and against the portable ops in f64.

mod common;
use common::{hold_isa_from_env, rel_diff};

use candle_core::{DType, Device, Tensor, Var};
use dia_nn::init::uniform;
use dia_nn::{max_pool2d, with_kernel_policy, BatchNorm2d, KernelPolicy, MaxPoolConfig};
use rand::SeedableRng;

/// Output, running mean and variance, and the gradients of `Σ y·r` by x, γ and β.
struct Pass {
    y: Tensor,
    running: [Tensor; 2],
    grads: [Tensor; 3],
}

fn pass(x0: &Tensor, r: &Tensor, cfg: MaxPoolConfig, fused: bool) -> Pass {
    let c = x0.dim(1).unwrap();
    let dev = x0.device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // In x0's dtype: f64 runs the portable ops in f64, the reference of the f32 kernels.
    let dt = x0.dtype();
    let param = |t: Tensor| Var::from_tensor(&t.to_dtype(dt).unwrap()).unwrap();
    let x = Var::from_tensor(x0).unwrap();
    let g = param((uniform(c, 0.5, &mut rng, dev).unwrap() + 1.0).unwrap());
    // Shifts around −0.5: a good share of the ReLU's inputs are negative.
    let b = param((uniform(c, 0.5, &mut rng, dev).unwrap() - 0.5).unwrap());
    let bn = BatchNorm2d::from_tensors(
        g.as_tensor().clone(),
        b.as_tensor().clone(),
        Tensor::zeros(c, dt, dev).unwrap(),
        Tensor::ones(c, dt, dev).unwrap(),
        0,
    )
    .unwrap();
    let y = if fused {
        bn.forward_relu_pool_t(x.as_tensor(), true, cfg)
    } else {
        max_pool2d(&bn.forward_relu_t(x.as_tensor(), true).unwrap(), cfg)
    }
    .unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let grad = |v: &Var| grads.get(v.as_tensor()).expect("a gradient").clone();
    Pass {
        running: [bn.running_mean().clone(), bn.running_var().clone()],
        grads: [grad(&x), grad(&g), grad(&b)],
        y,
    }
}

#[test]
fn fused_stem_matches_batch_norm_relu_then_max_pool() {
    hold_isa_from_env();
    let dev = Device::Cpu;
    let two_by_two = MaxPoolConfig {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let cases = [
        ((2, 3, 9, 7), MaxPoolConfig::RESNET_STEM),
        ((4, 16, 12, 12), MaxPoolConfig::RESNET_STEM),
        ((1, 2, 2, 2), MaxPoolConfig::RESNET_STEM),
        ((3, 5, 1, 6), MaxPoolConfig::RESNET_STEM),
        ((2, 4, 8, 6), two_by_two),
    ];
    for (i, &(shape, cfg)) in cases.iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
        // Values on a grid of 0.25 after the offset: windows hold ties.
        let x0 = ((uniform(shape, 2.0, &mut rng, &dev).unwrap() * 4.0)
            .unwrap()
            .round()
            .unwrap()
            / 4.0)
            .unwrap();
        let x0 = (x0 + 3.0).unwrap();
        let out_shape = max_pool2d(&x0, cfg).unwrap().dims().to_vec();
        let r = uniform(out_shape.as_slice(), 1.0, &mut rng, &dev).unwrap();
        let fused = with_kernel_policy(KernelPolicy::Fast, || pass(&x0, &r, cfg, true));
        let apart = with_kernel_policy(KernelPolicy::Fast, || pass(&x0, &r, cfg, false));
        let portable = with_kernel_policy(KernelPolicy::Portable, || pass(&x0, &r, cfg, true));
        let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let exact = pass(&f64s(&x0), &f64s(&r), cfg, true);
        let at = format!("{shape:?} {cfg:?}");
        // The forward is the same arithmetic as the two ops: equal to the bit.
        let vals = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(vals(&fused.y), vals(&apart.y), "output {at}");
        for k in 0..2 {
            assert_eq!(
                vals(&fused.running[k]),
                vals(&apart.running[k]),
                "running {k} {at}"
            );
        }
        assert!(
            rel_diff(&fused.y, &portable.y) < 1e-5,
            "output vs portable {at}"
        );
        for (k, name) in ["x", "gamma", "beta"].iter().enumerate() {
            // Only the order of the channel sums differs from the two ops.
            let e = rel_diff(&fused.grads[k], &apart.grads[k]);
            assert!(e < 1e-5, "d{name} {at}: {e}");
            let e = rel_diff(&fused.grads[k], &portable.grads[k]);
            assert!(e < 1e-4, "d{name} vs portable {at}: {e}");
            let e = rel_diff(&fused.grads[k], &exact.grads[k]);
            assert!(e < 1e-4, "d{name} vs f64 {at}: {e}");
        }
    }
}

#[test]
fn evaluation_is_batch_norm_relu_then_max_pool() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x = uniform((2, 3, 6, 6), 1.0, &mut rng, &dev).unwrap();
    let bn = BatchNorm2d::new(3, &dev).unwrap();
    let cfg = MaxPoolConfig::RESNET_STEM;
    let fused = bn.forward_relu_pool_t(&x, false, cfg).unwrap();
    let apart = max_pool2d(&bn.forward_relu_t(&x, false).unwrap(), cfg).unwrap();
    assert_eq!(rel_diff(&fused, &apart), 0.0);
    assert!(bn
        .forward_relu_pool_t(
            &Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap(),
            true,
            cfg
        )
        .is_err());
}
