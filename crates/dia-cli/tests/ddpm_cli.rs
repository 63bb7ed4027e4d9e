//! `dia train-ddpm`, `dia dissolve` and `dia sample` on the embedded sample with a tiny UNet:
//! training lowers the loss and writes samples, a killed run resumes to the same weights, and
//! bad input is refused with an error that names the problem.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{dia, metrics_column, ok, write_config};

use candle_core::Device;

fn config(dir: &Path, steps: usize, save_every: usize) -> PathBuf {
    let body = format!(
        "data:\n  format: idx\n  dir: {{data}}\nnormal_classes: [\"Trouser\"]\nimage_size: 16\nunet: {{dim: 8, dim_mults: [1, 2]}}\nbatch_size: 8\nsteps: {steps}\nlr: 2.0e-3\nsave_every: {save_every}\nnum_samples: 4\nsample_steps: 4\nseed: 5\n"
    );
    write_config(dir, "ddpm.yaml", &body)
}

fn losses(run: &Path) -> Vec<f64> {
    metrics_column(run, 1)
}

fn assert_same_weights(a: &Path, b: &Path) {
    let load = |p: &Path| {
        candle_core::safetensors::load(p.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (wa, wb) = (load(a), load(b));
    assert_eq!(wa.len(), wb.len());
    for (name, t) in &wa {
        let (x, y) = (t.flatten_all().unwrap(), wb[name].flatten_all().unwrap());
        assert!(
            x.to_vec1::<f32>().unwrap() == y.to_vec1::<f32>().unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn training_lowers_the_loss_and_the_model_dissolves_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 80, 40);
    let run = dir.path().join("run");
    ok(&dia(&[
        "train-ddpm",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ]));
    let l = losses(&run);
    assert_eq!(l.len(), 80);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&l[..10]), mean(&l[70..]));
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    assert!(run.join("samples/step-000080.png").exists());
    let model = run.join("model.safetensors");
    let (ddpm, meta) = dia_diffusion::checkpoint::load_checkpoint(&model, &Device::Cpu).unwrap();
    assert_eq!((meta.image_size, meta.step, meta.ema), (16, 80, false));
    assert_eq!(ddpm.schedule().timesteps(), 1000);

    // dia dissolve on a .npy batch: one t gives (N,3,H,W), several give (len(t),N,3,H,W).
    let x = candle_core::Tensor::full(0.5f32, (2, 3, 28, 28), &Device::Cpu).unwrap();
    let input = dir.path().join("x.npy");
    x.write_npy(&input).unwrap();
    let (m, inp) = (model.to_str().unwrap(), input.to_str().unwrap());
    let dissolve = |extra: &[&str]| {
        let mut args = vec!["dissolve", "--checkpoint", m, inp];
        args.extend_from_slice(extra);
        dia(&args)
    };
    let one = dir.path().join("one.npy");
    ok(&dissolve(&["--t", "50", "-o", one.to_str().unwrap()]));
    assert_eq!(
        candle_core::Tensor::read_npy(&one).unwrap().dims(),
        [2, 3, 28, 28]
    );
    let many = dir.path().join("many.npy");
    ok(&dissolve(&["--t", "30,99", "-o", many.to_str().unwrap()]));
    assert_eq!(
        candle_core::Tensor::read_npy(&many).unwrap().dims(),
        [2, 2, 3, 28, 28]
    );
    let strip = dir.path().join("strip.png");
    ok(&dissolve(&["-o", strip.to_str().unwrap()]));
    assert!(image::open(&strip).unwrap().width() > 0);
    // A timestep past T is refused.
    let out = dissolve(&["--t", "1000"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--t"));

    let grid = dir.path().join("samples.png");
    ok(&dia(&[
        "sample",
        "--checkpoint",
        run.join("ema.safetensors").to_str().unwrap(),
        "-n",
        "4",
        "--steps",
        "3",
        "-o",
        grid.to_str().unwrap(),
    ]));
    assert!(image::open(&grid).unwrap().width() > 0);
    let macs = ok(&dia(&["dissolve", "--macs"]));
    assert!(macs.contains("32 px") && macs.contains("GMACs"), "{macs}");
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 12, 2);
    let (a, b, c) = (
        dir.path().join("straight"),
        dir.path().join("killed"),
        dir.path().join("stopped"),
    );
    ok(&dia(&[
        "train-ddpm",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        a.to_str().unwrap(),
    ]));

    // Stopped after 5 steps (a checkpoint between the save_every multiples), then resumed.
    ok(&dia(&[
        "train-ddpm",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        c.to_str().unwrap(),
        "--stop-after-steps",
        "5",
    ]));
    ok(&dia(&["train-ddpm", "--resume", c.to_str().unwrap()]));
    assert_same_weights(&a, &c);
    assert_eq!(losses(&a), losses(&c));

    // SIGKILL at some point after the first checkpoint.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dia"))
        .args([
            "train-ddpm",
            "--config",
            cfg.to_str().unwrap(),
            "--run",
            b.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !b.join("checkpoint.safetensors").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    ok(&dia(&["train-ddpm", "--resume", b.to_str().unwrap()]));
    assert_same_weights(&a, &b);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated checkpoint names the file.
    let bad = dir.path().join("truncated.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let out = dia(&["sample", "--checkpoint", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("truncated.safetensors"),
        "{err}"
    );
    // A legacy (non-zip) PyTorch file is refused with the way out.
    let legacy = dir.path().join("model-1.pt");
    std::fs::write(&legacy, b"\x80\x02}q\x00.").unwrap();
    let out = dia(&["sample", "--checkpoint", legacy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("torch.save"), "{err}");
    // Unknown config keys and impossible shapes.
    let cfg = config(dir.path(), 10, 5);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let run = dir.path().join("r");
    let train_stderr = |yaml: String| {
        std::fs::write(&cfg, yaml).unwrap();
        let args = [
            "train-ddpm",
            "--config",
            cfg.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ];
        String::from_utf8_lossy(&dia(&args).stderr).into_owned()
    };
    assert!(train_stderr(text.clone() + "learning_rate: 1\n").contains("learning_rate"));
    assert!(
        train_stderr(text.replace("image_size: 16", "image_size: 15")).contains("image_size 15")
    );
}
