//! A whole CSI step and a whole DIA step of ResNet-18 give the same loss and the same gradient
//! of every parameter on dia-nn's portable path (candle ops: what a GPU runs) as on the fast
//! CPU path (issue #14), and LARS's tensor step (the GPU's) updates like its CPU step.

mod common;

use candle_core::{Device, Tensor};
use dia_contrastive::{losses, BatchBuilder, Lars, LarsConfig, NegMode};
use dia_data::load_batch;
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
use dia_nn::{with_kernel_policy, KernelPolicy};
use dia_transforms::{BlurDissolver, Dissolve, Shift};
use rand::SeedableRng;

const TOL: f64 = 1e-4;

fn images(n: usize) -> Tensor {
    let ds = common::sample_train();
    load_batch(ds.as_ref(), (0..n).collect()).unwrap().images
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    dia_nn::kernels::rel_diff(a, b).unwrap()
}

fn model(arch: Arch) -> ResNet18 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let cfg = EncoderConfig {
        width: 8,
        ..EncoderConfig::new(arch)
    };
    ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu).unwrap()
}

/// Loss terms and every parameter's gradient of one step, fast against portable.
fn same_step(arch: Arch, dissolver: Option<&dyn Dissolve>, groups: usize) {
    let builder = BatchBuilder::new(Shift::Rotation, dissolver);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let batch = builder.build(&images(3), &mut rng).unwrap();
    assert_eq!(batch.groups, groups);
    let m = model(arch);
    let step = || {
        let (total, numbers) = losses(&m, &batch, NegMode::ShiftedRemoved).unwrap();
        (numbers, total.backward().unwrap())
    };
    let (lf, gf) = with_kernel_policy(KernelPolicy::Fast, step);
    let (lp, gp) = with_kernel_policy(KernelPolicy::Portable, step);
    for (name, a, b) in [
        ("contrastive", lp.contrastive, lf.contrastive),
        ("shift", lp.shift, lf.shift),
    ] {
        assert!(
            (a - b).abs() <= TOL * b.abs().max(1.0),
            "{arch:?} {name} loss: {a} vs {b}"
        );
    }
    for (name, v) in m.vars() {
        let (a, b) = (gp.get(v.as_tensor()), gf.get(v.as_tensor()));
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            // Heads outside the loss (the classifier) have a gradient on neither path.
            (None, None) => continue,
            _ => panic!("{arch:?}: {name} has a gradient on one path only"),
        };
        let e = rel(a, b);
        assert!(e <= TOL, "{arch:?}: gradient of {name} differs by {e:e}");
    }
}

#[test]
fn a_csi_step_is_the_same_on_both_paths() {
    same_step(Arch::ResNet18, None, 2);
}

#[test]
fn a_dia_step_is_the_same_on_both_paths() {
    let blur = BlurDissolver::gaussian(3);
    same_step(Arch::ResNet18, Some(&blur), 3);
}

#[test]
fn an_imagenet_stem_step_is_the_same_on_both_paths() {
    same_step(Arch::ResNet18ImageNet, None, 2);
}

#[test]
fn lars_tensor_step_matches_its_cpu_step() {
    let run = |policy| {
        with_kernel_policy(policy, || {
            let m = model(Arch::ResNet18);
            let builder = BatchBuilder::new(Shift::Rotation, None);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let batch = builder.build(&images(2), &mut rng).unwrap();
            let mut lars = Lars::new(LarsConfig::default());
            let mut out = Vec::new();
            for _ in 0..2 {
                let l = dia_contrastive::train_step(
                    &m,
                    &batch,
                    NegMode::ShiftedRemoved,
                    &mut lars,
                    0.1,
                )
                .unwrap();
                out.push(l.total());
            }
            let w = m.vars()["shift_cls_layer.weight"].as_tensor().clone();
            (out, w)
        })
    };
    let (lf, wf) = run(KernelPolicy::Fast);
    let (lp, wp) = run(KernelPolicy::Portable);
    for (a, b) in lp.iter().zip(&lf) {
        assert!((a - b).abs() <= TOL * b.abs().max(1.0), "loss {a} vs {b}");
    }
    assert!(rel(&wp, &wf) <= TOL, "weights after two LARS steps differ");
}
