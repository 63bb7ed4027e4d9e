//! `dia embed` on the PyTorch golden fixture of dia-encoder: the features it writes equal
//! PyTorch's eval-mode outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dia-encoder/tests/fixtures")
}

/// `dia embed --checkpoint <fixture .pth> --input INPUT --output OUTPUT [extra]`.
fn embed(input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dia"))
        .arg("embed")
        .args(extra)
        .arg("--checkpoint")
        .arg(fixtures().join("resnet18_w4.pth"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn embed_reproduces_pytorch_from_a_reference_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let golden =
        candle_core::safetensors::load(fixtures().join("resnet18_w4.safetensors"), &Device::Cpu)
            .unwrap();
    let npy = dir.path().join("x.npy");
    golden["input.x"].write_npy(&npy).unwrap();
    let out = dir.path().join("features.safetensors");
    let run = embed(&npy, &out, &["--batch-size", "3"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let feats = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    for name in ["penultimate", "simclr", "shift"] {
        let d = (&feats[name] - &golden[&format!("eval.{name}")])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "{name}: {d}");
    }
}

#[test]
fn embed_reads_image_folders_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in [10u8, 200].iter().enumerate() {
        let p = dir.path().join(format!("imgs/sub/{i}.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(40, 30, image::Rgb([*v, 0, 0]))
            .save(&p)
            .unwrap();
    }
    let out = dir.path().join("f.safetensors");
    let run = embed(&dir.path().join("imgs"), &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let feats = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert_eq!(feats["simclr"].dims(), [2, 128]);

    let bad = dir.path().join("bad.npy");
    Tensor::zeros((2, 1, 8, 8), candle_core::DType::F32, &Device::Cpu)
        .unwrap()
        .write_npy(&bad)
        .unwrap();
    let run = embed(&bad, &out, &[]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("bad.npy") && err.contains("(N, 3, H, W)"),
        "{err}"
    );
}
