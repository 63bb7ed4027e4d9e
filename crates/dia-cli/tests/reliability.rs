//! Runs, checkpoints and statistics that cannot be mixed up, and rough edges (issue #19),
//! through the `dia` binary: one lock per run directory, resume files tied to their config
//! and checked for corruption, statistics tied to their checkpoint, ranges checked at load,
//! progress lines without a terminal, one clean error line.

mod common;

use std::path::{Path, PathBuf};

use common::{dia, dia_with_env, ok, write_config};

const CSI: &str = "data:\n  format: idx\n  dir: {data}\nimage_size: 32\nnormal_classes: [\"Trouser\"]\nmode: csi\nshift_trans_type: rotation\nencoder: {arch: resnet18, width: 8}\nepochs: 2\nbatch_size: 8\nmax_iterations_per_epoch: 2\nSEED\n";

fn config(dir: &Path, name: &str, seed: u64) -> PathBuf {
    write_config(dir, name, &CSI.replace("SEED", &format!("seed: {seed}")))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with a message holding every one of `needles`, without a panic.
fn fails_with(out: &std::process::Output, needles: &[&str]) {
    let e = stderr(out);
    assert!(!out.status.success(), "should fail: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
}

#[test]
fn a_locked_run_directory_is_refused_naming_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "a.yaml", 1);
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let lock_path = run.join(".dia.lock");
    std::fs::write(&lock_path, "pid 4242: dia train --config other.yaml\n").unwrap();
    let lock = std::fs::File::open(&lock_path).unwrap();
    lock.try_lock().unwrap();
    let out = dia(&["train", "--config", s(&cfg), "--run", s(&run)]);
    fails_with(&out, &["in use by another dia process", "pid 4242"]);
    let ddpm = write_config(
        dir.path(),
        "ddpm.yaml",
        "data:\n  format: idx\n  dir: {data}\nimage_size: 16\nunet: {dim: 8, dim_mults: [1, 2]}\nbatch_size: 8\nsteps: 2\n",
    );
    let out = dia(&["train-ddpm", "--config", s(&ddpm), "--run", s(&run)]);
    fails_with(&out, &["in use by another dia process"]);
    // The kernel releases the lock with its holder: a killed process leaves no stale lock.
    drop(lock);
    ok(&dia(&["train", "--config", s(&cfg), "--run", s(&run)]));
    assert!(run.join("last.safetensors").is_file());
}

#[test]
fn resume_refuses_another_runs_state_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (run, seed) in [(&a, 1), (&b, 2)] {
        let cfg = config(dir.path(), &format!("{seed}.yaml"), seed);
        ok(&dia(&[
            "train",
            "--config",
            s(&cfg),
            "--run",
            s(run),
            "--stop-after-epochs",
            "1",
        ]));
    }
    // A new run over an existing one is refused, so is a resume of a run without a checkpoint.
    let cfg = config(dir.path(), "again.yaml", 1);
    fails_with(
        &dia(&["train", "--config", s(&cfg), "--run", s(&a)]),
        &["already holds a run"],
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(a.join("config.yaml"), empty.join("config.yaml")).unwrap();
    fails_with(
        &dia(&["train", "--resume", s(&empty)]),
        &["nothing to resume", "before its first checkpoint"],
    );
    let file = "last.train.safetensors";
    let own = std::fs::read(a.join(file)).unwrap();
    // Another run's resume file: refused with both fingerprints.
    std::fs::copy(b.join(file), a.join(file)).unwrap();
    fails_with(
        &dia(&["train", "--resume", s(&a)]),
        &["another config (fingerprint", "(fingerprint", file],
    );
    // One flipped bit in the tensors: refused as corrupt.
    let mut flipped = own.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x10;
    std::fs::write(a.join(file), &flipped).unwrap();
    fails_with(&dia(&["train", "--resume", s(&a)]), &["corrupt", file]);
    // Its own state resumes, and resuming the finished run says so (no "NaN").
    std::fs::write(a.join(file), &own).unwrap();
    ok(&dia(&["train", "--resume", s(&a)]));
    let again = ok(&dia(&["train", "--resume", s(&a)]));
    assert!(
        again.contains("already done") && !again.contains("NaN"),
        "{again}"
    );
}

#[test]
fn predict_refuses_statistics_of_another_checkpoint_and_quotes_its_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (run, seed) in [(&a, 1), (&b, 2)] {
        let cfg = config(dir.path(), &format!("{seed}.yaml"), seed);
        ok(&dia(&["train", "--config", s(&cfg), "--run", s(run)]));
    }
    ok(&dia(&["eval", "--run", s(&a), "--ood-samples", "1"]));
    let ckpt = a.join("last.safetensors");
    // A single image file and a folder holding `a,b.png` are inputs; the CSV quotes the name.
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let png = images.join("a,b.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([90, 90, 90]))
        .save(&png)
        .unwrap();
    let one = ok(&dia(&["predict", "--checkpoint", s(&ckpt), s(&png)]));
    assert_eq!(one.lines().count(), 2, "{one}");
    let csv = dir.path().join("p.csv");
    ok(&dia(&[
        "predict",
        "--checkpoint",
        s(&ckpt),
        s(&images),
        "-o",
        s(&csv),
    ]));
    let (header, rows) = dia_io::csv::read_csv(&csv).unwrap();
    assert_eq!(header, ["source", "score"]);
    assert_eq!(rows.len(), 1);
    assert!(rows[0][0].ends_with("a,b.png"), "{rows:?}");
    fails_with(
        &dia(&[
            "predict",
            "--checkpoint",
            s(&ckpt),
            s(&png),
            "--threshold",
            "NaN",
        ]),
        &["--threshold"],
    );
    // The checkpoint changes under its statistics (another run's copied in): refused.
    std::fs::copy(b.join("last.safetensors"), &ckpt).unwrap();
    fails_with(
        &dia(&["predict", "--checkpoint", s(&ckpt), s(&png)]),
        &[
            "last.csi.safetensors",
            "not from the checkpoint",
            "dia eval",
        ],
    );
}

#[test]
fn out_of_range_config_fields_are_refused_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let dia_cfg = |name: &str, dissolver: &str| {
        write_config(
            dir.path(),
            name,
            &CSI.replace("mode: csi", "mode: dia")
                .replace(
                    "shift_trans_type: rotation",
                    "shift_trans_type: diffusion_rotation",
                )
                .replace(
                    "SEED",
                    &format!("diffusion: {{checkpoint: x.safetensors, dissolver: {dissolver}}}"),
                ),
        )
    };
    for (name, dissolver, key) in [
        (
            "inverted.yaml",
            "{offset: 0.9, upper_offset: 0.5}",
            "upper_offset",
        ),
        ("over.yaml", "{upper_offset: 5.0}", "upper_offset"),
        ("negative.yaml", "{offset: -0.1}", "offset"),
    ] {
        let cfg = dia_cfg(name, dissolver);
        let run = dir.path().join(format!("run-{name}"));
        let out = dia(&["train", "--config", s(&cfg), "--run", s(&run)]);
        fails_with(&out, &[name, key, "outside"]);
        assert!(!run.exists(), "a refused run leaves no directory");
    }
    let big = write_config(
        dir.path(),
        "big.yaml",
        &CSI.replace("image_size: 32", "image_size: 100000")
            .replace("SEED", ""),
    );
    fails_with(
        &dia(&[
            "train",
            "--config",
            s(&big),
            "--run",
            s(&dir.path().join("big")),
        ]),
        &["image_size", "100000", "4096"],
    );
    let zero = write_config(
        dir.path(),
        "zero.yaml",
        "data:\n  format: idx\n  dir: {data}\nimage_size: 16\nunet: {dim: 8, dim_mults: [1, 0, 4]}\nbatch_size: 8\nsteps: 2\n",
    );
    fails_with(
        &dia(&[
            "train-ddpm",
            "--config",
            s(&zero),
            "--run",
            s(&dir.path().join("z")),
        ]),
        &["dim_mults", "at least 1"],
    );
    // --run naming a file, and an image output that is neither .png nor .npy.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cfg = config(dir.path(), "ok.yaml", 1);
    fails_with(
        &dia(&["train", "--config", s(&cfg), "--run", s(&file)]),
        &["a-file", "not a directory"],
    );
    fails_with(
        &dia(&["sample", "--checkpoint", "x.safetensors", "-o", "x.bmp"]),
        &["x.bmp", ".png or .npy"],
    );
    // A run that fails once started (its data is missing) leaves no empty directory.
    let gone = write_config(
        dir.path(),
        "gone.yaml",
        &CSI.replace("{data}", "/nonexistent/data")
            .replace("SEED", ""),
    );
    let run = dir.path().join("run-gone");
    fails_with(
        &dia(&["train", "--config", s(&gone), "--run", s(&run)]),
        &["/nonexistent/data"],
    );
    assert!(!run.exists(), "a failed run leaves no directory");
    // One line per error: the OS error is not repeated.
    let out = dia(&["train", "--config", s(&dir.path().join("missing.yaml"))]);
    let e = stderr(&out);
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
}

#[test]
fn without_a_terminal_training_logs_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "log.yaml", 1);
    let run = dir.path().join("run");
    // stderr is a pipe here, as in a batch job.
    let out = dia_with_env(
        &["train", "--config", s(&cfg), "--run", s(&run)],
        &[("DIA_LOG_EVERY", "0")],
    );
    ok(&out);
    let e = stderr(&out);
    let lines: Vec<&str> = e.lines().filter(|l| l.contains("ETA")).collect();
    assert!(lines.len() >= 4, "{e}");
    assert!(
        lines[0].contains("epoch 1/2") && lines[0].contains("loss"),
        "{e}"
    );
}
