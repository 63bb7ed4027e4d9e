//! Shapes, names and parameter counts of the encoders (spec §5.4, §8).

use candle_core::{DType, Device, Tensor};
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
use rand::SeedableRng;

fn model(arch: Arch, width: usize, seed: u64) -> ResNet18 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cfg = EncoderConfig {
        width,
        ..EncoderConfig::new(arch)
    };
    ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu).unwrap()
}

#[test]
fn parameter_counts_match_the_reference() {
    // Spec §5.4: with K = 4 and n = 2, resnet18 has 11,504,334 parameters and
    // resnet18_imagenet 11,512,014.
    for (arch, want) in [
        (Arch::ResNet18, 11_504_334),
        (Arch::ResNet18ImageNet, 11_512_014),
    ] {
        let m = model(arch, 64, 0);
        let count: usize = m.vars().values().map(|v| v.as_tensor().elem_count()).sum();
        assert_eq!(count, want, "{arch:?}");
    }
}

#[test]
fn state_dict_has_the_reference_names() {
    let m = model(Arch::ResNet18, 8, 0);
    let sd = m.state_dict().unwrap();
    // 130 keys including BN running statistics and num_batches_tracked (spec §8).
    assert_eq!(sd.len(), 130);
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer4.1.bn2.num_batches_tracked",
        "simclr_layer.0.weight",
        "simclr_layer.2.bias",
        "shift_cls_layer.weight",
        "joint_distribution_layer.weight",
        "linear.bias",
    ] {
        assert!(sd.contains_key(name), "missing {name}");
    }
    assert_eq!(sd["conv1.weight"].dims(), [8, 3, 3, 3]);
    assert_eq!(sd["joint_distribution_layer.weight"].dims(), [8, 64]);
    let im = model(Arch::ResNet18ImageNet, 8, 0).state_dict().unwrap();
    assert_eq!(im.len(), 130);
    assert_eq!(im["conv1.weight"].dims(), [8, 3, 7, 7]);
    assert!(im.contains_key("layer3.0.downsample.1.running_mean"));
    assert_eq!(im["layer1.0.bn1.num_batches_tracked"].dtype(), DType::I64);
}

#[test]
fn reload_gives_identical_outputs_and_bad_tensors_are_named() {
    let dev = Device::Cpu;
    let m = model(Arch::ResNet18, 8, 1);
    let x = dia_nn::init::uniform(
        (3, 3, 32, 32),
        0.5,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(2),
        &dev,
    )
    .unwrap()
    .affine(1.0, 0.5)
    .unwrap();
    m.forward_t(&x, true).unwrap(); // moves the running statistics
    let sd = m.state_dict().unwrap();
    let again = ResNet18::new(m.config(), Source::Tensors(&sd), &dev).unwrap();
    let (a, b) = (
        m.forward_t(&x, false).unwrap(),
        again.forward_t(&x, false).unwrap(),
    );
    for (p, q) in [
        (&a.simclr, &b.simclr),
        (&a.shift, &b.shift),
        (&a.penultimate, &b.penultimate),
    ] {
        let d = (p - q)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
    }
    let mut missing = sd.clone();
    missing.remove("layer3.1.conv2.weight");
    let err = ResNet18::new(m.config(), Source::Tensors(&missing), &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer3.1.conv2.weight") && err.contains("missing"),
        "{err}"
    );
    let mut wrong = sd.clone();
    wrong.insert(
        "shift_cls_layer.weight".into(),
        Tensor::zeros((5, 64), DType::F32, &dev).unwrap(),
    );
    let err = ResNet18::new(m.config(), Source::Tensors(&wrong), &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shift_cls_layer.weight") && err.contains("[5, 64]"),
        "{err}"
    );
    let mut extra = sd;
    extra.insert(
        "head.fc.weight".into(),
        Tensor::zeros(3, DType::F32, &dev).unwrap(),
    );
    let err = ResNet18::new(m.config(), Source::Tensors(&extra), &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected") && err.contains("head.fc.weight"),
        "{err}"
    );
}

#[test]
fn cifar_stem_refuses_large_inputs_and_training_mode_has_gradients() {
    let dev = Device::Cpu;
    let m = model(Arch::ResNet18, 8, 3);
    let big = Tensor::zeros((1, 3, 64, 64), DType::F32, &dev).unwrap();
    let err = m.forward_t(&big, false).unwrap_err().to_string();
    assert!(err.contains("resnet18_imagenet"), "{err}");
    let x = Tensor::full(0.3f32, (2, 3, 28, 28), &dev).unwrap();
    let out = m.forward_t(&x, true).unwrap();
    let grads = out
        .simclr
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in m.vars() {
        if name.starts_with("shift") || name.starts_with("linear") || name.starts_with("joint") {
            continue;
        }
        assert!(grads.get(v.as_tensor()).is_some(), "no gradient for {name}");
    }
}
