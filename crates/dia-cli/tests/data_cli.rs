//! Integration tests of `dia data`: run the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dia() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dia"));
    cmd.current_dir(workspace_root());
    cmd
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn png(path: &Path, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(9, 7, image::Rgb([v, v, 0]))
        .save(path)
        .unwrap();
}

#[test]
fn check_names_a_corrupt_png_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        for class in ["0_normal", "1_abnormal"] {
            for i in 0..3 {
                png(
                    &dir.path().join(split).join(class).join(format!("{i}.png")),
                    40 * i as u8,
                );
            }
        }
    }
    let out = dia()
        .args(["data", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "clean tree: {stdout}");
    assert!(stdout.contains("no problems found"), "{stdout}");

    let corrupt = dir.path().join("test/1_abnormal/scan_017.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n but then garbage").unwrap();
    let out = dia()
        .args(["data", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "must exit non-zero: {stdout}");
    assert!(
        stdout.contains(corrupt.to_str().unwrap()),
        "must name the file: {stdout}"
    );
    assert!(stdout.contains("1 problem(s)"), "{stdout}");
    assert!(stdout.contains("train: 6 images"), "{stdout}");
}

#[test]
fn check_reports_the_embedded_sample() {
    let out = dia()
        .args(["data", "check", "datasets/fashion-mnist-sample"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("train: 3000 images of 28x28"), "{stdout}");
    assert!(stdout.contains("Shirt"), "{stdout}");
}

#[test]
fn check_fails_on_a_truncated_idx_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = workspace_root().join("datasets/fashion-mnist-sample");
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte.gz"),
        &bytes[..bytes.len() - 1000],
    )
    .unwrap();
    let out = dia()
        .args(["data", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("t10k-images-idx3-ubyte.gz"), "{stdout}");
}

#[test]
fn missing_folder_is_a_clear_error() {
    let out = dia()
        .args(["data", "check", "/nonexistent/dataset"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/dataset") && stderr.contains("not a folder"),
        "{stderr}"
    );
}

#[test]
fn preview_writes_a_png_grid() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("sub/preview.png");
    let out = dia()
        .args(["data", "preview", "--n", "3", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&output).unwrap();
    // 3 rows x 11 columns of 28-px tiles with 2-px gutters, scaled by 256 / 28 = 9.
    assert_eq!(
        (img.width(), img.height()),
        ((11 * 30 + 2) * 9, (3 * 30 + 2) * 9)
    );
}
