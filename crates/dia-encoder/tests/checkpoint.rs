//! Importing reference PyTorch checkpoints and round-tripping our safetensors checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use dia_encoder::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden(arch: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(format!("{arch}_w4.safetensors")),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn reference_pth_files_load_and_reproduce_pytorch() {
    for (arch, want) in [
        ("resnet18", Arch::ResNet18),
        ("resnet18_imagenet", Arch::ResNet18ImageNet),
    ] {
        let model =
            load_reference_checkpoint(&fixtures().join(format!("{arch}_w4.pth")), &Device::Cpu)
                .unwrap();
        let cfg = model.config();
        assert_eq!(
            (
                cfg.arch,
                cfg.width,
                cfg.k_shift,
                cfg.num_classes,
                cfg.simclr_dim
            ),
            (want, 4, 4, 2, 128)
        );
        let g = golden(arch);
        let out = model.forward_t(&g["input.x"], false).unwrap();
        assert!(max_diff(&out.simclr, &g["eval.simclr"]) < 1e-4, "{arch}");
        assert!(max_diff(&out.shift, &g["eval.shift"]) < 1e-4, "{arch}");
    }
}

#[test]
fn safetensors_checkpoint_round_trips_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        load_reference_checkpoint(&fixtures().join("resnet18_w4.pth"), &Device::Cpu).unwrap();
    let path = dir.path().join("encoder.safetensors");
    let extra = BTreeMap::from([("dia.mode".to_string(), "csi".to_string())]);
    save_checkpoint(&model, &path, &extra).unwrap();
    let (again, meta) = load_checkpoint(&path, &Device::Cpu).unwrap();
    assert_eq!(again.config(), model.config());
    assert_eq!(meta["dia.mode"], "csi");
    assert!(meta.contains_key("dia.encoder"));
    let x = &golden("resnet18")["input.x"];
    let (a, b) = (
        model.forward_t(x, false).unwrap(),
        again.forward_t(x, false).unwrap(),
    );
    assert_eq!(max_diff(&a.simclr, &b.simclr), 0.0);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn unreadable_checkpoints_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.pth");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0alegacy pickle").unwrap();
    let err = load_reference_checkpoint(&legacy, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("legacy.pth") && err.contains("torch.save"),
        "{err}"
    );

    let bytes = std::fs::read(fixtures().join("resnet18_w4.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_reference_checkpoint(&cut, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.pth"), "{err}");

    let err = load_reference_checkpoint(&dir.path().join("missing.pth"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.pth"), "{err}");

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"{not safetensors").unwrap();
    let err = load_checkpoint(&junk, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("junk.safetensors"), "{err}");
}

#[test]
fn config_inference_rejects_strange_stems() {
    let mut t = golden("resnet18");
    t.insert(
        "conv1.weight".into(),
        Tensor::zeros((4, 3, 5, 5), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let err = infer_config(&t).unwrap_err().to_string();
    assert!(err.contains("5x5"), "{err}");
    t.remove("conv1.weight");
    assert!(infer_config(&t)
        .unwrap_err()
        .to_string()
        .contains("conv1.weight"));
}

#[test]
fn data_parallel_prefix_is_stripped() {
    let t = read_reference_checkpoint(&fixtures().join("data_parallel_prefix.pth")).unwrap();
    let mut names: Vec<&String> = t.keys().collect();
    names.sort();
    assert_eq!(names, ["conv1.weight", "linear.bias"]);
    assert_eq!(t["conv1.weight"].dims(), [2, 3, 3, 3]);
}
