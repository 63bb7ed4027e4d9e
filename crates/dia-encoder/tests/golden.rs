//! Golden tests against PyTorch (fixtures by `scripts/fixtures/encoder.py`): both encoders,
//! random weights and non-trivial batch-norm statistics, loaded by their reference names, give
//! PyTorch's `penultimate`, `simclr` and `shift` outputs in evaluation and in training mode.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};

fn fixture(arch: &str) -> HashMap<String, Tensor> {
    let path = format!(
        "{}/tests/fixtures/{arch}_w4.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// max |a − b| / max(1, max |b|).
fn diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1.0);
    d / scale
}

fn check(arch_name: &str, arch: Arch) {
    let f = fixture(arch_name);
    let state: HashMap<String, Tensor> = f
        .iter()
        .filter(|(k, _)| {
            !k.contains('.')
                || !["input", "eval", "train", "train_after"]
                    .contains(&k.split('.').next().unwrap())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(state.len(), 130);
    let cfg = EncoderConfig {
        width: 4,
        ..EncoderConfig::new(arch)
    };
    let model = ResNet18::new(cfg, Source::Tensors(&state), &Device::Cpu).unwrap();
    let x = &f["input.x"];
    let eval = model.forward_t(x, false).unwrap();
    for (name, got) in [
        ("penultimate", &eval.penultimate),
        ("simclr", &eval.simclr),
        ("shift", &eval.shift),
    ] {
        let d = diff(got, &f[&format!("eval.{name}")]);
        assert!(d <= 1e-4, "{arch_name} eval {name}: {d}");
    }
    let train = model.forward_t(x, true).unwrap();
    for (name, got) in [
        ("penultimate", &train.penultimate),
        ("simclr", &train.simclr),
        ("shift", &train.shift),
    ] {
        let d = diff(got, &f[&format!("train.{name}")]);
        assert!(d <= 1e-4, "{arch_name} train {name}: {d}");
    }
    // The running estimates moved as PyTorch's did.
    let sd = model.state_dict().unwrap();
    for k in ["bn1.running_mean", "layer4.1.bn2.running_var"] {
        let d = diff(&sd[k], &f[&format!("train_after.{k}")]);
        assert!(d <= 1e-5, "{arch_name} {k}: {d}");
    }
    assert_eq!(
        sd["bn1.num_batches_tracked"].to_scalar::<i64>().unwrap(),
        12
    );
}

#[test]
fn resnet18_cifar_matches_pytorch() {
    check("resnet18", Arch::ResNet18);
}

#[test]
fn resnet18_imagenet_matches_pytorch() {
    check("resnet18_imagenet", Arch::ResNet18ImageNet);
}
