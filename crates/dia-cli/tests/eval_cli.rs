//! `dia eval` and `dia predict` on a tiny CSI encoder trained on the embedded sample: the four
//! report files, a guard against evaluating with the wrong shift, and thresholded predictions.

mod common;

use std::path::{Path, PathBuf};

use common::{dia, ok, root};

fn config(dir: &Path, shift: &str) -> PathBuf {
    let path = dir.join(format!("{shift}.yaml"));
    let text = format!(
        "data:\n  format: idx\n  dir: {}\nimage_size: 32\nnormal_classes: [\"Trouser\"]\nmode: csi\nshift_trans_type: {shift}\nencoder: {{arch: resnet18, width: 8}}\nepochs: 2\nbatch_size: 16\nmax_iterations_per_epoch: 5\nseed: 1\n",
        root().join("datasets/fashion-mnist-sample").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn eval_writes_the_report_and_predict_scores_new_images() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "rotation");
    let run = dir.path().join("run");
    ok(&dia(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ]));
    let table = ok(&dia(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--ood-samples",
        "1",
    ]));
    assert!(table.contains("all (pooled)"), "{table}");
    let eval = run.join("eval");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval.join("report.json")).unwrap()).unwrap();
    let auroc = report["pooled"]["auroc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auroc), "{auroc}");
    assert_eq!(report["pooled"]["n_normal"], 100);
    assert_eq!(report["pooled"]["n_anomalous"], 900);
    assert_eq!(report["per_class"].as_array().unwrap().len(), 9);
    let csv = std::fs::read_to_string(eval.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1001);
    for png in ["roc.png", "scores.png"] {
        let img = image::open(eval.join(png)).unwrap();
        assert!(img.width() > 100 && img.height() > 100);
    }

    // Evaluating a rotation checkpoint with a cutperm config names the field.
    let cut = config(dir.path(), "cutperm");
    let ckpt = run.join("last.safetensors");
    let out = dia(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--config",
        cut.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("shift_trans_type"),
        "{err}"
    );

    // dia predict with a threshold calibrated at 10 % false positives.
    let x = candle_core::Tensor::full(0.3f32, (3, 3, 32, 32), &candle_core::Device::Cpu).unwrap();
    let npy = dir.path().join("x.npy");
    x.write_npy(&npy).unwrap();
    let out = ok(&dia(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        npy.to_str().unwrap(),
        "--fpr",
        "0.1",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "source,score,prediction");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].ends_with(",normal") || lines[1].ends_with(",anomalous"));
    // Without dia eval first, predict explains what to do.
    let other = dir.path().join("copy.safetensors");
    std::fs::copy(&ckpt, &other).unwrap();
    let out = dia(&[
        "predict",
        "--checkpoint",
        other.to_str().unwrap(),
        npy.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dia eval"));
}
