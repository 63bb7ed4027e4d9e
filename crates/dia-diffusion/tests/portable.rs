//! The DDPM UNet on dia-nn's portable path (candle ops: what a GPU runs) equals the fast CPU
//! path: the dissolving forward, and a training step's loss and every parameter gradient
//! (issue #14).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use dia_diffusion::{randn_like, GaussianDiffusion, Schedule, Unet, UnetConfig};
use dia_nn::{with_kernel_policy, KernelPolicy};
use rand::SeedableRng;

const TOL: f32 = 1e-4;

fn rel(a: &Tensor, b: &Tensor) -> f32 {
    dia_nn::kernels::rel_diff(a, b).unwrap() as f32
}

#[test]
fn unet_forward_and_training_step_match() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let cfg = UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        ..UnetConfig::default()
    };
    let (_, init) = Unet::init(&cfg, &mut rng, &Device::Cpu).unwrap();
    let vars: HashMap<String, Var> = init
        .iter()
        .map(|(k, v)| (k.clone(), Var::from_tensor(v).unwrap()))
        .collect();
    let tensors: HashMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let unet = Unet::from_tensors(&cfg, &tensors, &Device::Cpu).unwrap();
    let ddpm = GaussianDiffusion::new(unet, Schedule::cosine(100));
    let x = dia_nn::init::uniform((3, 3, 16, 16), 0.5, &mut rng, &Device::Cpu)
        .unwrap()
        .affine(1.0, 0.5)
        .unwrap();
    let noise = randn_like(&x, &mut rng).unwrap();
    let t = [5usize, 40, 99];
    let run = || {
        let (x0, eps) = ddpm.x_start(&x, 30).unwrap();
        let loss = ddpm.loss(&x, &t, &noise).unwrap();
        let grads = loss.backward().unwrap();
        (x0, eps, loss, grads)
    };
    let (x0f, epsf, lf, gf) = with_kernel_policy(KernelPolicy::Fast, run);
    let (x0p, epsp, lp, gp) = with_kernel_policy(KernelPolicy::Portable, run);
    assert!(rel(&x0p, &x0f) <= TOL, "dissolved x0 differs");
    assert!(rel(&epsp, &epsf) <= TOL, "eps differs");
    assert!(rel(&lp, &lf) <= TOL, "loss differs");
    let norm = |t: &Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let largest = vars
        .values()
        .filter_map(|v| gf.get(v.as_tensor()).map(norm))
        .fold(0f32, f32::max);
    let mut compared = 0;
    for (name, v) in &vars {
        match (gp.get(v.as_tensor()), gf.get(v.as_tensor())) {
            // The bias of a convolution followed by a group norm over its own channel has a
            // zero gradient in exact arithmetic (the norm removes any constant); both paths
            // must leave only rounding noise there (measured: about 1e-10, the others 1e-4).
            (Some(a), Some(b)) if norm(b) < 1e-6 * largest => {
                assert!(
                    norm(a) < 1e-6 * largest,
                    "{name}: zero on the fast path only"
                );
            }
            (Some(a), Some(b)) => {
                let e = rel(a, b);
                assert!(e <= TOL, "gradient of {name} differs by {e:e}");
                compared += 1;
            }
            (None, None) => {}
            _ => panic!("{name} has a gradient on one path only"),
        }
    }
    assert!(compared > 20, "only {compared} gradients compared");
}
