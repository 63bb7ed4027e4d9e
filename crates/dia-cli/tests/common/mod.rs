//! Helpers shared by the `dia` integration tests.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `dia ARGS` in the repository root.
pub fn dia(args: &[&str]) -> Output {
    dia_with_env(args, &[])
}

/// Runs `dia ARGS` in the repository root with extra environment variables.
pub fn dia_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dia"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap()
}

/// Asserts that a run succeeded (showing its output otherwise) and returns its stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `dir/name` with `body`, where `{data}` stands for the embedded sample's folder.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let data = root().join("datasets/fashion-mnist-sample");
    std::fs::write(&path, body.replace("{data}", &data.display().to_string())).unwrap();
    path
}

/// Column `col` of a run's `metrics.csv`, as numbers (the header skipped).
pub fn metrics_column(run: &Path, col: usize) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect()
}
