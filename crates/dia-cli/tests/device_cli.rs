//! `--device` and the kernel policy through the `dia` binary (issue #14): a tiny `dia train` +
//! `dia eval` on the portable kernels (the code a GPU runs) gives the fast path's losses and
//! AUROC; every computing command takes `--device` and says which device it uses.

mod common;

use std::path::Path;

use common::{dia, dia_with_env, metrics_column, ok, write_config};

fn config(dir: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        "dia.yaml",
        "data:\n  format: idx\n  dir: {data}\nimage_size: 32\nnormal_classes: [\"Trouser\"]\nmode: dia\nshift_trans_type: blurgaussian_rotation\nencoder: {arch: resnet18, width: 8}\nepochs: 2\nbatch_size: 8\nmax_iterations_per_epoch: 2\nseed: 5\n",
    )
}

/// The per-iteration total losses of a run's metrics.csv.
fn losses(run: &Path) -> Vec<f64> {
    metrics_column(run, 2)
}

fn auroc(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("eval/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    report["pooled"]["auroc"].as_f64().unwrap()
}

/// `dia train` then `dia eval` of one run, with `kernels` as DIA_KERNELS.
fn train_and_eval(cfg: &Path, run: &Path, kernels: &str) -> String {
    let env = [("DIA_KERNELS", kernels)];
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    let train = dia_with_env(
        &["train", "--config", c, "--run", r, "--device", "cpu"],
        &env,
    );
    ok(&train);
    let eval = dia_with_env(
        &["eval", "--run", r, "--ood-samples", "1", "--device", "cpu"],
        &env,
    );
    ok(&eval);
    String::from_utf8_lossy(&train.stderr).into_owned()
}

#[test]
fn portable_kernels_train_and_evaluate_like_the_fast_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (fast, portable) = (dir.path().join("fast"), dir.path().join("portable"));
    let stderr = train_and_eval(&cfg, &fast, "fast");
    assert!(stderr.contains("device: cpu"), "{stderr}");
    let stderr = train_and_eval(&cfg, &portable, "portable");
    assert!(stderr.contains("kernels: portable"), "{stderr}");
    let (lf, lp) = (losses(&fast), losses(&portable));
    // Four steps: a narrow net trained on a few images amplifies float differences about
    // tenfold per step (width 4, batch 4 drifted past 1e-4 by its fifth step; the fast path
    // against its own gemm fallback drifts at the same rate), so "a few steps" is what
    // compares kernels rather than chaos.
    assert_eq!(lf.len(), 4);
    assert_eq!(lf.len(), lp.len());
    for (i, (a, b)) in lp.iter().zip(&lf).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "step {i}: loss {a} (portable) vs {b} (fast)"
        );
    }
    let (af, ap) = (auroc(&fast), auroc(&portable));
    assert!(
        (af - ap).abs() <= 1e-3,
        "AUROC {ap} (portable) vs {af} (fast)"
    );
}

#[test]
fn every_computing_command_takes_device_and_a_cpu_build_refuses_cuda() {
    for cmd in [
        "train",
        "train-ddpm",
        "eval",
        "predict",
        "embed",
        "dissolve",
        "sample",
        "bench",
        "quickstart",
        "experiment",
    ] {
        let help = ok(&dia(&[cmd, "--help"]));
        assert!(
            help.contains("--device <DEVICE>"),
            "dia {cmd} --help:\n{help}"
        );
    }
    if cfg!(not(feature = "cuda")) {
        let out = dia(&[
            "bench",
            "csi-score",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--device",
            "cuda",
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("built without CUDA") && !err.contains("panicked"),
            "{err}"
        );
    }
    let out = dia(&["bench", "csi-score", "--device", "tpu"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device"));
    let out = dia_with_env(&["bench", "--list"], &[("DIA_KERNELS", "gpu")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIA_KERNELS"));
}
