//! The portable path (candle ops + autograd: what a GPU runs) equals the fast CPU path, op by op:
//! forward and every gradient on a grid of shapes, to 1e-4 relative (issue #14). Both paths run
//! here on the CPU, selected with `with_kernel_policy`.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{hold_isa_from_env, rel_diff};
use dia_nn::{
    add_relu, channel_layer_norm, conv2d, group_norm, max_pool2d, weight_standardized_conv2d,
    with_kernel_policy, BatchNorm2d, Conv2dConfig, KernelPolicy, MaxPoolConfig,
};
use rand::SeedableRng;

const TOL: f32 = 1e-4;

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(dims: &[usize], seed: u64) -> Tensor {
    dia_nn::init::uniform(dims, 1.0, &mut rng(seed), &Device::Cpu).unwrap()
}

/// Runs `f` (which returns outputs followed by gradients) under every policy — the portable
/// ops, and the fast ones held to gemm (a CPU without AVX-512) or without Winograd — and
/// compares every tensor with the fast path's, naming the first that differs.
fn same_on_both_paths(what: &str, f: impl Fn() -> Vec<(&'static str, Tensor)>) {
    hold_isa_from_env();
    let fast = with_kernel_policy(KernelPolicy::Fast, &f);
    for policy in [
        KernelPolicy::Portable,
        KernelPolicy::Gemm,
        KernelPolicy::NoWinograd,
    ] {
        let other = with_kernel_policy(policy, &f);
        assert_eq!(fast.len(), other.len());
        for ((name, a), (_, b)) in fast.iter().zip(&other) {
            let e = rel_diff(b, a);
            assert!(
                e <= TOL,
                "{what}: {name} differs by {e:e} on the {policy} path"
            );
        }
    }
}

/// A loss that weighs every output differently, so no gradient is uniform.
fn weighted_sum(y: &Tensor, seed: u64) -> Tensor {
    let r = uniform(y.dims(), seed);
    (y * r).unwrap().sum_all().unwrap()
}

fn grad(g: &candle_core::backprop::GradStore, v: &Var) -> Tensor {
    g.get(v.as_tensor()).expect("a gradient").clone()
}

#[test]
fn conv2d_forward_and_gradients() {
    // (n, cin, size, cout, kernel, stride, padding, bias): Winograd, AVX-512 tiles, gemm,
    // the ImageNet stem, 1x1 strided shortcuts, no padding, odd sizes.
    let grid = [
        (2, 3, 9, 4, 3, 1, 1, true),
        (2, 16, 8, 16, 3, 1, 1, false),
        (1, 5, 11, 6, 3, 2, 1, true),
        (2, 4, 14, 8, 7, 2, 3, false),
        (2, 8, 8, 4, 1, 2, 0, false),
        (1, 3, 7, 2, 5, 1, 0, true),
        (2, 6, 10, 5, 3, 2, 0, false),
        // Rows of at least 16 pixels take the direct tiles; 32x32 is the CIFAR stem.
        (2, 3, 32, 8, 3, 1, 1, false),
        (2, 8, 32, 8, 3, 1, 1, false),
        (2, 8, 20, 16, 3, 2, 1, false),
        // The late layers: 4x4 and 2x2 maps, many channels.
        (4, 32, 4, 64, 3, 1, 1, false),
        (4, 32, 8, 64, 3, 2, 1, false),
        (4, 32, 8, 64, 1, 2, 0, false),
        (3, 16, 2, 32, 3, 1, 1, false),
    ];
    for (i, &(n, cin, s, cout, k, stride, pad, bias)) in grid.iter().enumerate() {
        let seed = 10 * i as u64;
        let x = Var::from_tensor(&uniform(&[n, cin, s, s], seed)).unwrap();
        let w = Var::from_tensor(&uniform(&[cout, cin, k, k], seed + 1)).unwrap();
        let b = Var::from_tensor(&uniform(&[cout], seed + 2)).unwrap();
        let cfg = Conv2dConfig::new(stride, pad);
        same_on_both_paths(&format!("conv2d {:?}", grid[i]), || {
            let y = conv2d(
                x.as_tensor(),
                w.as_tensor(),
                bias.then(|| b.as_tensor()),
                cfg,
            )
            .unwrap();
            let g = weighted_sum(&y, seed + 3).backward().unwrap();
            let mut out = vec![("y", y), ("dx", grad(&g, &x)), ("dw", grad(&g, &w))];
            if bias {
                out.push(("db", grad(&g, &b)));
            }
            out
        });
    }
}

#[test]
fn batch_norm_train_eval_and_fused_relu() {
    for (i, dims) in [[4, 3, 5, 5], [2, 16, 4, 4], [8, 8, 1, 1], [4, 8, 32, 32]]
        .iter()
        .enumerate()
    {
        let seed = 100 + 10 * i as u64;
        let c = dims[1];
        let x = Var::from_tensor(&uniform(dims, seed)).unwrap();
        let gamma = Var::from_tensor(&uniform(&[c], seed + 1).affine(0.5, 1.0).unwrap()).unwrap();
        let beta = Var::from_tensor(&uniform(&[c], seed + 2)).unwrap();
        for relu in [false, true] {
            same_on_both_paths(&format!("batch norm {dims:?} relu {relu}"), || {
                let bn = BatchNorm2d::from_tensors(
                    gamma.as_tensor().clone(),
                    beta.as_tensor().clone(),
                    uniform(&[c], seed + 3),
                    uniform(&[c], seed + 4).affine(0.5, 1.0).unwrap(),
                    0,
                )
                .unwrap();
                let forward = |train| match relu {
                    true => bn.forward_relu_t(x.as_tensor(), train).unwrap(),
                    false => bn.forward_t(x.as_tensor(), train).unwrap(),
                };
                let y = forward(true);
                let g = weighted_sum(&y, seed + 5).backward().unwrap();
                let y_eval = forward(false);
                let ge = weighted_sum(&y_eval, seed + 6).backward().unwrap();
                vec![
                    ("y", y),
                    ("dx", grad(&g, &x)),
                    ("dgamma", grad(&g, &gamma)),
                    ("dbeta", grad(&g, &beta)),
                    ("running_mean", bn.running_mean().clone()),
                    ("running_var", bn.running_var().clone()),
                    ("y eval", y_eval),
                    ("dx eval", grad(&ge, &x)),
                    ("dgamma eval", grad(&ge, &gamma)),
                ]
            });
        }
    }
}

#[test]
fn the_portable_max_pool_gives_a_tie_all_of_the_gradient_once() {
    // One 2x2 window of four equal values: the whole gradient lands on the first.
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let cfg = MaxPoolConfig {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let y = dia_nn::pool::portable(x.as_tensor(), cfg).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let dx = grad(&g, &x)
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(dx, [1., 0., 0., 0.]);
}

#[test]
fn add_relu_forward_and_gradients_including_zero() {
    let a = uniform(&[2, 4, 5, 5], 300);
    // b = −a on the first image: a + b is exactly 0 there, where the gradient must be 0.
    let b = Tensor::cat(
        &[
            a.narrow(0, 0, 1).unwrap().neg().unwrap(),
            uniform(&[1, 4, 5, 5], 301),
        ],
        0,
    )
    .unwrap();
    let (a, b) = (Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap());
    same_on_both_paths("add_relu", || {
        let y = add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let g = weighted_sum(&y, 302).backward().unwrap();
        vec![("y", y), ("da", grad(&g, &a)), ("db", grad(&g, &b))]
    });
}

#[test]
fn group_norm_and_weight_standardised_conv() {
    // (n, c, h, w, groups): the UNet's 8 groups, one group, one channel per group, odd sizes
    // (square: the portable convolution takes square inputs).
    for (i, &(n, c, h, w, groups)) in [
        (2, 8, 6, 6, 4),
        (3, 16, 7, 7, 8),
        (1, 12, 4, 4, 1),
        (2, 6, 3, 3, 6),
    ]
    .iter()
    .enumerate()
    {
        let s = 400 + 10 * i as u64;
        let x = Var::from_tensor(&uniform(&[n, c, h, w], s)).unwrap();
        let gamma = Var::from_tensor(&uniform(&[c], s + 1)).unwrap();
        let beta = Var::from_tensor(&uniform(&[c], s + 2)).unwrap();
        let wt = Var::from_tensor(&uniform(&[6, c, 3, 3], s + 3)).unwrap();
        let b = Var::from_tensor(&uniform(&[6], s + 4)).unwrap();
        same_on_both_paths("group norm + weight-standardised conv", || {
            let hn = group_norm(
                x.as_tensor(),
                groups,
                Some(gamma.as_tensor()),
                Some(beta.as_tensor()),
                1e-5,
            )
            .unwrap();
            let y = weight_standardized_conv2d(
                &hn,
                wt.as_tensor(),
                Some(b.as_tensor()),
                Conv2dConfig::new(1, 1),
            )
            .unwrap();
            let g = weighted_sum(&y, s + 5).backward().unwrap();
            vec![
                ("h", hn),
                ("y", y),
                ("dx", grad(&g, &x)),
                ("dgamma", grad(&g, &gamma)),
                ("dbeta", grad(&g, &beta)),
                ("dw", grad(&g, &wt)),
                ("db", grad(&g, &b)),
            ]
        });
    }
}

#[test]
fn channel_layer_norm_forward_and_gradients() {
    // The UNet's attention widths at small maps, one channel, and an odd map.
    for (i, &(n, c, h, w)) in [(2, 64, 4, 4), (3, 1, 2, 2), (1, 5, 3, 7)]
        .iter()
        .enumerate()
    {
        let s = 600 + 10 * i as u64;
        let x = Var::from_tensor(&uniform(&[n, c, h, w], s)).unwrap();
        let g = Var::from_tensor(&uniform(&[1, c, 1, 1], s + 1)).unwrap();
        same_on_both_paths("channel layer norm", || {
            let y = channel_layer_norm(x.as_tensor(), g.as_tensor(), 1e-5).unwrap();
            let grads = weighted_sum(&y, s + 2).backward().unwrap();
            vec![("y", y), ("dx", grad(&grads, &x)), ("dg", grad(&grads, &g))]
        });
    }
}

#[test]
fn both_paths_refuse_the_same_bad_shapes() {
    let x = uniform(&[1, 3, 8, 8], 500);
    let w = uniform(&[4, 2, 3, 3], 501);
    for policy in [KernelPolicy::Fast, KernelPolicy::Portable] {
        let e = with_kernel_policy(policy, || conv2d(&x, &w, None, Conv2dConfig::new(1, 1)));
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("input channels"), "{policy}: {msg}");
        let tiny = uniform(&[1, 1, 2, 2], 502);
        let big = MaxPoolConfig {
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let e = with_kernel_policy(policy, || max_pool2d(&tiny, big));
        assert!(
            e.is_err(),
            "{policy}: a 2x2 input fits no unpadded 3x3 window"
        );
    }
}
