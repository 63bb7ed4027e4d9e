//! `cargo xtask fetch-datasets` against a local HTTP server: a good download is verified and
//! laid out, a wrong hash extracts nothing, an interrupted download resumes, malicious archives
//! are refused with nothing written outside the target, and a second fetch downloads nothing.

mod server;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

fn xtask(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn png(v: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([v, v, v]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A zip of `ds/normal/n{i}.png` and `ds/anomaly/a{i}.png` plus `extra` raw entries.
fn zip_archive(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..10u8 {
        w.start_file(format!("ds/normal/n{i}.png"), opts).unwrap();
        w.write_all(&png(i)).unwrap();
        w.start_file(format!("ds/anomaly/a{i}.png"), opts).unwrap();
        w.write_all(&png(100 + i)).unwrap();
    }
    for (name, data) in extra {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A tar with one good image and one raw header (name, type, link target) written byte by
/// byte, so that names the tar crate would refuse can be made.
fn tar_archive(name: &str, kind: u8, link: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = png(1);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_path("ds/normal/ok.png").unwrap();
    h.set_cksum();
    b.append(&h, data.as_slice()).unwrap();
    let mut h = tar::Header::new_old();
    {
        let bytes = h.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
        bytes[156] = kind;
    }
    h.set_mode(0o644);
    h.set_size(if kind == b'0' { 5 } else { 0 });
    h.set_cksum();
    let body: &[u8] = if kind == b'0' { b"evil\n" } else { b"" };
    b.append(&h, body).unwrap();
    b.into_inner().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A workspace with `datasets/<name>.yaml` pointing at `url`.
fn manifest(root: &Path, name: &str, file: &str, url: &str, hash: Option<&str>) {
    std::fs::create_dir_all(root.join("datasets")).unwrap();
    let hash = hash
        .map(|h| format!("    sha256: {h}\n"))
        .unwrap_or_default();
    let text = format!(
        "name: {name}\ntitle: test\nhomepage: x\nlicence: x\ncitation: x\nnormal: normal\nformat: folders\nsources:\n  - file: {file}\n    urls: [\"{url}\"]\n{hash}layout:\n  - {{from: ds/normal, class: 0_normal}}\n  - {{from: ds/anomaly, class: 1_abnormal}}\nsplit: {{test: 0.2, val: 0.0, seed: 0}}\n"
    );
    std::fs::write(root.join("datasets").join(format!("{name}.yaml")), text).unwrap();
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server holding `zip` at `/ds.zip` (its first full response cut after `cut` bytes, if
/// given) and a project root whose manifest `toy` points there with SHA-256 `hash`.
fn toy_source(zip: &[u8], hash: &str, cut: Option<usize>) -> (server::Server, tempfile::TempDir) {
    let srv = server::start(server::Routes {
        files: HashMap::from([("/ds.zip".to_string(), zip.to_vec())]),
        cut_first: cut
            .map(|n| HashMap::from([("/ds.zip".to_string(), n)]))
            .unwrap_or_default(),
    });
    let root = tempfile::tempdir().unwrap();
    manifest(
        root.path(),
        "toy",
        "ds.zip",
        &format!("{}/ds.zip", srv.base),
        Some(hash),
    );
    (srv, root)
}

/// The file names in `dir`.
fn names(dir: &Path) -> std::collections::BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[test]
fn a_good_download_is_verified_laid_out_and_not_fetched_twice() {
    let zip = zip_archive(&[]);
    let (srv, root) = toy_source(&zip, &sha(&zip), None);
    ok(&xtask(&["fetch-datasets", "toy"], root.path()));
    let data = root.path().join("data/toy");
    assert_eq!(count(&data.join("train/0_normal")), 8);
    assert_eq!(count(&data.join("test/0_normal")), 2);
    assert_eq!(count(&data.join("train/1_abnormal")), 8);
    assert_eq!(count(&data.join("test/1_abnormal")), 2);
    assert!(root.path().join("datasets/splits/toy.csv").is_file());
    assert!(data.join(".dia-dataset.json").is_file());
    // The result is a dataset dia reads.
    let report = dia_data::check_folder(&data).unwrap();
    assert!(report.is_ok(), "{report:?}");
    // Twice: nothing is downloaded again.
    let out = xtask(&["fetch-datasets", "toy"], root.path());
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already fetched"));
    assert_eq!(srv.log.lock().unwrap().len(), 1);
    // With the split file kept, a fresh fetch gives the same split.
    let first = names(&data.join("test/0_normal"));
    std::fs::remove_dir_all(root.path().join("data")).unwrap();
    ok(&xtask(&["fetch-datasets", "toy"], root.path()));
    assert_eq!(first, names(&data.join("test/0_normal")));
}

#[test]
fn a_wrong_hash_extracts_nothing() {
    let (_srv, root) = toy_source(&zip_archive(&[]), &"0".repeat(64), None);
    let out = xtask(&["fetch-datasets", "toy"], root.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("sha256") && err.contains("nothing was extracted"),
        "{err}"
    );
    assert!(!root.path().join("data/toy").exists());
    assert!(!root.path().join("data/.toy.tmp").exists());
    // The bad file is not kept for the next run to trust.
    assert!(!root.path().join("data/.downloads/ds.zip").exists());
}

#[test]
fn an_interrupted_download_resumes() {
    let zip = zip_archive(&[]);
    let half = zip.len() / 2;
    let (srv, root) = toy_source(&zip, &sha(&zip), Some(half));
    let out = xtask(&["fetch-datasets", "toy"], root.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resume"));
    let part = root.path().join("data/.downloads/ds.zip.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len() as usize, half);
    ok(&xtask(&["fetch-datasets", "toy"], root.path()));
    let log = srv.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1], format!("/ds.zip range=bytes={half}-"));
    assert_eq!(count(&root.path().join("data/toy/train/0_normal")), 8);
}

#[test]
fn malicious_archives_are_refused_and_write_nothing_outside() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot.zip", zip_archive(&[("../escaped.txt", b"evil")])),
        (
            "abs.zip",
            zip_archive(&[("/tmp/dia-abs-escape.txt", b"evil")]),
        ),
        ("dotdot.tar", tar_archive("../escaped.txt", b'0', "")),
        ("abs.tar", tar_archive("/tmp/dia-abs-escape.txt", b'0', "")),
        (
            "link.tar",
            tar_archive("ds/normal/link", b'2', "../../../escaped.txt"),
        ),
        (
            "abslink.tar",
            tar_archive("ds/normal/link", b'2', "/etc/passwd"),
        ),
    ];
    let files: HashMap<String, Vec<u8>> = cases
        .iter()
        .map(|(n, b)| (format!("/{n}"), b.clone()))
        .collect();
    let srv = server::start(server::Routes {
        files,
        ..Default::default()
    });
    for (name, bytes) in &cases {
        let root = tempfile::tempdir().unwrap();
        let dsname = name.replace('.', "-");
        manifest(
            root.path(),
            &dsname,
            name,
            &format!("{}/{name}", srv.base),
            Some(&sha(bytes)),
        );
        let out = xtask(&["fetch-datasets", &dsname], root.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains("refusing the archive"), "{name}: {err}");
        assert!(
            !root.path().join(format!("data/{dsname}")).exists(),
            "{name}"
        );
        assert!(
            !root.path().join(format!("data/.{dsname}.tmp")).exists(),
            "{name}"
        );
        for outside in [
            root.path().join("escaped.txt"),
            root.path().join("data/escaped.txt"),
            PathBuf::from("/tmp/dia-abs-escape.txt"),
        ] {
            assert!(!outside.exists(), "{name} wrote {}", outside.display());
        }
    }
}

#[test]
fn account_only_sources_explain_and_take_a_local_file() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("datasets")).unwrap();
    let zip = zip_archive(&[]);
    std::fs::write(
        root.path().join("datasets/kag.yaml"),
        "name: kag\ntitle: t\nhomepage: x\nlicence: x\ncitation: x\nnormal: n\nformat: folders\nsources:\n  - file: archive.zip\n    manual: \"log in to Kaggle and download archive.zip\"\nlayout:\n  - {from: ds/normal, class: 0_normal}\n  - {from: ds/anomaly, class: 1_abnormal}\nsplit: {test: 0.5, seed: 1}\n",
    )
    .unwrap();
    let out = xtask(&["fetch-datasets", "kag"], root.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("log in to Kaggle") && err.contains("--from"),
        "{err}"
    );
    let local = root.path().join("archive.zip");
    std::fs::write(&local, &zip).unwrap();
    let out = xtask(
        &["fetch-datasets", "kag", "--from", local.to_str().unwrap()],
        root.path(),
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNVERIFIED"));
    assert_eq!(count(&root.path().join("data/kag/test/0_normal")), 5);
}
