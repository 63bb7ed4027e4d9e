//! `dia train` on the embedded sample with tiny configs: runs lower the loss, write their run
//! directory, resume exactly, and refuse bad configs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(dir: &Path, mode: &str, shift: &str) -> PathBuf {
    let path = dir.join(format!("{mode}.yaml"));
    let text = format!(
        "data:\n  format: idx\n  dir: {}\nimage_size: 32\nnormal_classes: [\"T-shirt/top\"]\nmode: {mode}\nshift_trans_type: {shift}\nencoder: {{arch: resnet18, width: 8}}\nepochs: 3\nbatch_size: 8\nmax_iterations_per_epoch: 4\nseed: 3\n",
        root().join("datasets/fashion-mnist-sample").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn dia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dia"))
        .args(args)
        .output()
        .unwrap()
}

/// `dia train --config CFG --run RUN [extra]`.
fn train(cfg: &Path, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dia(&args)
}

fn epoch_means(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let e: usize = cols[0].parse().unwrap();
        if sums.len() < e {
            sums.resize(e, (0.0, 0));
        }
        sums[e - 1].0 += cols[2].parse::<f64>().unwrap();
        sums[e - 1].1 += 1;
    }
    sums.iter().map(|(s, n)| s / *n as f64).collect()
}

/// Every tensor of the two runs' last checkpoints is bit-identical.
fn assert_same_weights(a: &Path, b: &Path) {
    let wa = candle_core::safetensors::load(a.join("last.safetensors"), &Device::Cpu).unwrap();
    let wb = candle_core::safetensors::load(b.join("last.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(wa.len(), wb.len());
    let values = |t: &candle_core::Tensor| -> Vec<f64> {
        t.flatten_all()
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    for (name, t) in &wa {
        assert!(values(t) == values(&wb[name]), "{name} differs");
    }
}

#[test]
fn csi_and_dia_runs_lower_the_loss_and_write_their_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, shift) in [("csi", "rotation"), ("dia", "blurgaussian_rotation")] {
        let cfg = config(dir.path(), mode, shift);
        let run = dir.path().join(format!("run-{mode}"));
        let out = train(&cfg, &run, &[]);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in [
            "config.yaml",
            "metrics.csv",
            "last.safetensors",
            "last.train.safetensors",
        ] {
            assert!(run.join(f).is_file(), "{mode}: {f} missing");
        }
        let means = epoch_means(&run);
        assert_eq!(means.len(), 3);
        assert!(means[2] < means[0], "{mode}: epoch mean losses {means:?}");
        // The checkpoint is a usable encoder with its run metadata.
        let (_, meta) =
            dia_encoder::load_checkpoint(&run.join("last.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(meta["dia.shift_trans_type"], shift);
    }
}

/// DIA with the diffusion dissolver: a (randomly initialised, tiny) DDPM checkpoint in our
/// format is loaded from the config's `diffusion` section and its dissolved views train.
#[test]
fn dia_with_the_diffusion_dissolver_trains() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let ucfg = dia_diffusion::UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        ..Default::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (_, tensors) = dia_diffusion::Unet::init(&ucfg, &mut rng, &Device::Cpu).unwrap();
    let state =
        dia_diffusion::checkpoint::state_dict(&tensors, &dia_diffusion::Schedule::cosine(1000))
            .unwrap();
    let ddpm = dir.path().join("ddpm.safetensors");
    let meta = dia_diffusion::checkpoint::DdpmMeta {
        plateaued: false,
        unet: ucfg,
        image_size: 16,
        timesteps: 1000,
        step: 0,
        ema: false,
    };
    dia_diffusion::checkpoint::save_tensors(&ddpm, &state, &meta).unwrap();
    let cfg = config(dir.path(), "dia", "diffusion_rotation");
    // Without the section the config is refused with the way out.
    let out = train(&cfg, &dir.path().join("refused"), &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dia train-ddpm"));
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "diffusion:\n  checkpoint: {}\n  dissolver: {{offset: 0.3, upper_offset: 1.0}}\n",
            ddpm.display()
        );
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path().join("run");
    let out = train(&cfg, &run, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let means = epoch_means(&run);
    assert!(means[2] < means[0], "epoch mean losses {means:?}");
}

#[test]
fn resume_after_an_interruption_gives_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "dia", "blurmedian_cutperm");
    let (a, b) = (dir.path().join("straight"), dir.path().join("interrupted"));
    assert!(train(&cfg, &a, &[]).status.success());
    let out = train(&cfg, &b, &["--stop-after-epochs", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 3 epochs"));
    let out = dia(&["train", "--resume", b.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_weights(&a, &b);
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(b.join("metrics.csv")).unwrap()
    );
}

#[test]
fn bad_configs_and_existing_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "csi", "rotation");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cases = [
        (
            "typo.yaml",
            text.replace("epochs: 3", "epochz: 3"),
            "unknown field",
        ),
        (
            "mode.yaml",
            text.replace(
                "shift_trans_type: rotation",
                "shift_trans_type: blurgaussian_rotation",
            ),
            "mode csi",
        ),
        (
            "shift.yaml",
            text.replace("shift_trans_type: rotation", "shift_trans_type: rotate"),
            "shift_trans_type",
        ),
        ("broken.yaml", "data: [unclosed".to_string(), "broken.yaml"),
    ];
    for (name, body, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let out = train(&p, &dir.path().join("r"), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want) && err.contains(name),
            "{name}: {err}"
        );
    }
    let diffusion = dir.path().join("diffusion.yaml");
    std::fs::write(
        &diffusion,
        text.replace("mode: csi", "mode: dia").replace(
            "shift_trans_type: rotation",
            "shift_trans_type: diffusion_rotation",
        ),
    )
    .unwrap();
    let out = train(&diffusion, &dir.path().join("d"), &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("diffusion: {checkpoint: PATH}"));
    // A DDPM checkpoint that does not exist names the file.
    std::fs::write(
        &diffusion,
        std::fs::read_to_string(&diffusion).unwrap()
            + "diffusion: {checkpoint: /nonexistent/ddpm.safetensors}\n",
    )
    .unwrap();
    let out = train(&diffusion, &dir.path().join("d"), &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ddpm.safetensors"));
    // A finished run is not overwritten.
    let run = dir.path().join("done");
    assert!(train(&cfg, &run, &[]).status.success());
    let out = train(&cfg, &run, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

#[test]
fn every_shipped_config_parses_and_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("-experiment.yaml") {
            let out = dia(&["experiment", "--config", path.to_str().unwrap(), "--check"]);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        } else if name.ends_with("-ddpm.yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg: dia_diffusion::DdpmConfig =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cfg.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg: dia_contrastive::TrainConfig =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cfg.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 30, "{n} configs");
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "csi", "cutperm");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("epochs: 3", "epochs: 4");
    std::fs::write(&cfg, text).unwrap();
    let (a, b) = (dir.path().join("straight"), dir.path().join("killed"));
    assert!(train(&cfg, &a, &[]).status.success());
    // SIGKILL at some point after the first checkpoint: whatever is on disk then is a whole
    // checkpoint (files are written atomically), and resuming from it must end identically.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dia"))
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--run",
            b.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !b.join("last.train.safetensors").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = dia(&["train", "--resume", b.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_weights(&a, &b);
    // Resuming removed any temporary file the kill left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&b)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_exploding_loss_stops_the_run_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "csi", "rotation");
    let text = std::fs::read_to_string(&cfg).unwrap() + "lr: 1.0e30\n";
    std::fs::write(&cfg, text).unwrap();
    let out = train(&cfg, &dir.path().join("r"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run should stop");
    assert!(err.contains("not finite"), "{err}");
}
