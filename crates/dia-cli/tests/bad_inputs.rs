//! The bad-input corpus of issue #19: every subcommand over every bad input it can be given,
//! built here by a few lines of code each (no committed blobs). For each run: a non-zero
//! exit, no panic, a message naming the bad file, the inputs unchanged, and no output (or
//! temporary) left beside where the real one would go.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{dia, ok, root, write_config};

/// What a bad input is given to.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    /// An image input (a file, a folder or a .npy): predict, embed, dissolve, data check.
    Images,
    /// A dataset: data check, and a training config's `data:`.
    Dataset,
    /// A training config: train, train-ddpm, experiment --check, eval --config.
    Config,
    /// A checkpoint: eval, predict, embed, dissolve, sample.
    Checkpoint,
}

struct Case {
    path: PathBuf,
    slot: Slot,
    /// What the error must name (the file, or the folder for a folder case).
    names: String,
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

fn zip_of(path: &Path, entries: &[(&str, &[u8])]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn png_bytes() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 7, y as u8 * 5, 9]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn jpeg_bytes() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 7, y as u8 * 5, 9]))
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// Builds every bad input under `dir`.
fn corpus(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut file = |name: &str, bytes: &[u8], slot: Slot| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        cases.push(Case {
            names: name.to_string(),
            path,
            slot,
        });
    };
    let (png, jpg) = (png_bytes(), jpeg_bytes());
    // Images (each also goes in a folder of its own below).
    file("empty.png", b"", Slot::Images);
    file("junk.png", b"\x00\x01garbage, not an image", Slot::Images);
    file("cut.png", &png[..png.len() / 2], Slot::Images);
    file("cut.jpg", &jpg[..jpg.len() * 2 / 3], Slot::Images);
    file(
        "u8.npy",
        &npy("|u1", "(1, 3, 4, 4)", &[200; 48]),
        Slot::Images,
    );
    let big: Vec<u8> = (0..48).flat_map(|_| 500f32.to_le_bytes()).collect();
    file("range.npy", &npy("<f4", "(1, 3, 4, 4)", &big), Slot::Images);
    let nan: Vec<u8> = (0..48).flat_map(|_| f32::NAN.to_le_bytes()).collect();
    file("nan.npy", &npy("<f4", "(1, 3, 4, 4)", &nan), Slot::Images);
    file(
        "huge.npy",
        &npy("<f4", "(4000000000, 3, 28, 28)", &[0; 64]),
        Slot::Images,
    );
    file(
        "shape.npy",
        &npy("<f4", "(3, 4, 4)", &[0; 192]),
        Slot::Images,
    );
    file("junk.npy", b"\x93NUMPY\x01\x00\xff\xff{", Slot::Images);
    // Datasets.
    file("junk.npz", b"PK\x03\x04 not really a zip", Slot::Dataset);
    let cases_dir = dir.join("npz");
    std::fs::create_dir_all(&cases_dir).unwrap();
    let images = npy("|u1", "(2, 4, 4)", &[1; 32]);
    let labels = npy("<i8", "(2,)", &[0; 16]);
    let lying = npy("|u1", "(4000000000, 28, 28)", &[1; 32]);
    for (name, entries) in [
        (
            "nolabels.npz",
            vec![
                ("train_images.npy", &images[..]),
                ("test_images.npy", &images),
            ],
        ),
        (
            "lying.npz",
            vec![
                ("train_images.npy", &lying[..]),
                ("train_labels.npy", &labels),
                ("test_images.npy", &lying),
                ("test_labels.npy", &labels),
            ],
        ),
    ] {
        let p = dir.join(name);
        zip_of(&p, &entries);
        cases.push(Case {
            path: p,
            slot: Slot::Dataset,
            names: name.into(),
        });
    }
    // IDX folders: a truncated image file, and a header announcing 4e9 x 28 x 28 bytes.
    for (name, head) in [
        (
            "idx-cut",
            [0u8, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28],
        ),
        (
            "idx-huge",
            [0u8, 0, 8, 3, 0xee, 0x6b, 0x28, 0, 0, 0, 0, 28, 0, 0, 0, 28],
        ),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut bytes = head.to_vec();
        bytes.extend([0u8; 100]);
        for split in ["train", "t10k"] {
            std::fs::write(d.join(format!("{split}-images-idx3-ubyte")), &bytes).unwrap();
            std::fs::write(
                d.join(format!("{split}-labels-idx1-ubyte")),
                [0, 0, 8, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            )
            .unwrap();
        }
        cases.push(Case {
            path: d,
            slot: Slot::Dataset,
            names: "-images-idx3-ubyte".into(),
        });
    }
    // Folders of images: one bad image among good ones, a broken link, a loop, a folder
    // with an image's name.
    for (name, bad) in [("f-junk", "junk.png"), ("f-cut", "cut.jpg")] {
        let d = dir.join(name).join("test").join("shirt");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("good.png"), &png).unwrap();
        std::fs::copy(dir.join(bad), d.join(bad)).unwrap();
        std::fs::create_dir_all(dir.join(name).join("train").join("shirt")).unwrap();
        std::fs::write(dir.join(name).join("train/shirt/good.png"), &png).unwrap();
        cases.push(Case {
            path: dir.join(name),
            slot: Slot::Images,
            names: bad.into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let d = dir.join("f-dangling");
        std::fs::create_dir_all(d.join("test/shirt")).unwrap();
        std::fs::write(d.join("test/shirt/good.png"), &png).unwrap();
        symlink(dir.join("nowhere.png"), d.join("test/shirt/gone.png")).unwrap();
        cases.push(Case {
            path: d,
            slot: Slot::Images,
            names: "gone.png".into(),
        });
        let d = dir.join("f-loop");
        std::fs::create_dir_all(d.join("test/shirt")).unwrap();
        std::fs::write(d.join("test/shirt/good.png"), &png).unwrap();
        symlink(d.join("test/shirt/self.png"), d.join("test/shirt/self.png")).unwrap();
        cases.push(Case {
            path: d,
            slot: Slot::Images,
            names: "self.png".into(),
        });
    }
    let d = dir.join("f-dirpng");
    std::fs::create_dir_all(d.join("test/shirt/x.png")).unwrap();
    std::fs::write(d.join("test/shirt/good.png"), &png).unwrap();
    cases.push(Case {
        path: d,
        slot: Slot::Images,
        names: "x.png".into(),
    });
    // Configs.
    let mut config = |name: &str, body: &str| {
        let p = write_config(dir, name, body);
        cases.push(Case {
            path: p,
            slot: Slot::Config,
            names: name.into(),
        });
    };
    let good = "data:\n  format: idx\n  dir: {data}\nimage_size: 32\nnormal_classes: [\"Trouser\"]\nmode: csi\nshift_trans_type: rotation\nencoder: {arch: resnet18, width: 8}\nepochs: 1\nbatch_size: 8\n";
    config("empty.yaml", "");
    config("junk.yaml", "{{{ [");
    config("unknown.yaml", &format!("{good}colour: blue\n"));
    config("type.yaml", &good.replace("epochs: 1", "epochs: -3"));
    config(
        "size.yaml",
        &good.replace("image_size: 32", "image_size: 100000"),
    );
    config("lr.yaml", &format!("{good}lr: .nan\n"));
    config(
        "offset.yaml",
        &good
            .replace("mode: csi", "mode: dia")
            .replace("rotation", "diffusion_rotation")
            .replace("batch_size: 8\n", "batch_size: 8\ndiffusion: {checkpoint: x.safetensors, dissolver: {offset: 0.9, upper_offset: 0.5}}\n"),
    );
    // Checkpoints.
    let mut ckpt = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        cases.push(Case {
            path: p,
            slot: Slot::Checkpoint,
            names: name.into(),
        });
    };
    ckpt("empty.safetensors", b"");
    ckpt("junk.safetensors", b"garbage garbage garbage");
    ckpt(
        "hugeheader.safetensors",
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'{'],
    );
    let mut st = 40u64.to_le_bytes().to_vec();
    st.extend(br#"{"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#);
    ckpt("cut.safetensors", &st);
    ckpt("old.pth", b"\x80\x02legacy pickle, not a zip");
    // A zip whose pickle would call os.system: never run.
    let evil = dir.join("evil.pth");
    zip_of(
        &evil,
        &[(
            "archive/data.pkl",
            b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00touch PWNEDq\x01\x85q\x02Rq\x03.",
        )],
    );
    cases.push(Case {
        path: evil,
        slot: Slot::Checkpoint,
        names: "evil.pth".into(),
    });
    cases
}

/// Every file under `dir` with its bytes (links not followed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            } else {
                out.insert(e.path(), b"link".to_vec());
            }
        }
    }
    out
}

/// A tiny trained-and-evaluated encoder run and a tiny DDPM, for the commands whose other
/// arguments must be good for the bad one to be reached.
fn good_models(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let cfg = write_config(
        dir,
        "good.yaml",
        "data:\n  format: idx\n  dir: {data}\nimage_size: 32\nnormal_classes: [\"Trouser\"]\nmode: csi\nshift_trans_type: rotation\nencoder: {arch: resnet18, width: 8}\nepochs: 1\nbatch_size: 8\nmax_iterations_per_epoch: 1\n",
    );
    let run = dir.join("run");
    ok(&dia(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
    ]));
    ok(&dia(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--ood-samples",
        "1",
    ]));
    let ddpm_cfg = write_config(
        dir,
        "ddpm.yaml",
        "data:\n  format: idx\n  dir: {data}\nimage_size: 16\nunet: {dim: 8, dim_mults: [1, 2]}\nbatch_size: 4\nsteps: 1\nnum_samples: 0\n",
    );
    let ddpm = dir.join("ddpm");
    ok(&dia(&[
        "train-ddpm",
        "--config",
        ddpm_cfg.to_str().unwrap(),
        "--run",
        ddpm.to_str().unwrap(),
    ]));
    (
        cfg,
        run.join("last.safetensors"),
        ddpm.join("ema.safetensors"),
    )
}

#[test]
fn every_command_refuses_every_bad_input_cleanly() {
    let models = tempfile::tempdir().unwrap();
    let (good_cfg, encoder, ddpm) = good_models(models.path());
    let inputs = tempfile::tempdir().unwrap();
    let cases = corpus(inputs.path());
    let outputs = tempfile::tempdir().unwrap();
    let before = snapshot(inputs.path());
    let (g, e, d) = (
        good_cfg.to_str().unwrap().to_string(),
        encoder.to_str().unwrap().to_string(),
        ddpm.to_str().unwrap().to_string(),
    );
    let good_png = models.path().join("ok.png");
    std::fs::write(&good_png, png_bytes()).unwrap();
    let ok_png = good_png.to_str().unwrap().to_string();
    let mut runs = 0;
    for case in &cases {
        let p = case.path.to_str().unwrap().to_string();
        let out_dir = outputs.path().join(format!("out-{runs}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let o = |name: &str| out_dir.join(name).to_str().unwrap().to_string();
        let commands: Vec<Vec<String>> = match case.slot {
            Slot::Images => vec![
                vec![
                    "predict".into(),
                    "--checkpoint".into(),
                    e.clone(),
                    p.clone(),
                    "-o".into(),
                    o("p.csv"),
                ],
                vec![
                    "embed".into(),
                    "--checkpoint".into(),
                    e.clone(),
                    "--input".into(),
                    p.clone(),
                    "--output".into(),
                    o("e.safetensors"),
                ],
                vec![
                    "dissolve".into(),
                    "--checkpoint".into(),
                    d.clone(),
                    p.clone(),
                    "--t".into(),
                    "5".into(),
                    "-o".into(),
                    o("d.png"),
                ],
                vec!["data".into(), "check".into(), p.clone()],
            ],
            Slot::Dataset => {
                let cfg = out_dir.join("data.yaml");
                let data = if p.ends_with(".npz") {
                    format!("data:\n  format: npz\n  path: {p}\n")
                } else {
                    format!("data:\n  format: idx\n  dir: {p}\n")
                };
                let rest = "normal_classes: [\"0\"]\nmode: csi\nshift_trans_type: rotation\nencoder: {arch: resnet18, width: 8}\nepochs: 1\nbatch_size: 2\n";
                std::fs::write(&cfg, format!("{data}{rest}")).unwrap();
                vec![
                    vec!["data".into(), "check".into(), p.clone()],
                    vec![
                        "data".into(),
                        "preview".into(),
                        "--data".into(),
                        p.clone(),
                        "--output".into(),
                        o("preview.png"),
                    ],
                    vec![
                        "train".into(),
                        "--config".into(),
                        cfg.to_str().unwrap().into(),
                        "--run".into(),
                        o("run"),
                    ],
                ]
            }
            Slot::Config => vec![
                vec![
                    "train".into(),
                    "--config".into(),
                    p.clone(),
                    "--run".into(),
                    o("run"),
                ],
                vec![
                    "train-ddpm".into(),
                    "--config".into(),
                    p.clone(),
                    "--run".into(),
                    o("run"),
                ],
                vec![
                    "eval".into(),
                    "--checkpoint".into(),
                    e.clone(),
                    "--config".into(),
                    p.clone(),
                    "-o".into(),
                    o("eval"),
                ],
            ],
            Slot::Checkpoint => vec![
                vec![
                    "eval".into(),
                    "--checkpoint".into(),
                    p.clone(),
                    "--config".into(),
                    g.clone(),
                    "-o".into(),
                    o("eval"),
                ],
                vec![
                    "predict".into(),
                    "--checkpoint".into(),
                    p.clone(),
                    ok_png.clone(),
                    "-o".into(),
                    o("p.csv"),
                ],
                vec![
                    "embed".into(),
                    "--checkpoint".into(),
                    p.clone(),
                    "--input".into(),
                    ok_png.clone(),
                    "--output".into(),
                    o("e.safetensors"),
                ],
                vec![
                    "dissolve".into(),
                    "--checkpoint".into(),
                    p.clone(),
                    ok_png.clone(),
                    "-o".into(),
                    o("d.png"),
                ],
                vec![
                    "sample".into(),
                    "--checkpoint".into(),
                    p.clone(),
                    "-n".into(),
                    "1".into(),
                    "-o".into(),
                    o("s.png"),
                ],
            ],
        };
        for args in commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = dia(&args);
            // `data check` reports on stdout; the others fail on stderr.
            let err = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let what = format!("dia {}", args.join(" "));
            assert!(!out.status.success(), "{what}: exit 0\n{err}");
            assert!(!err.contains("panicked at"), "{what}: {err}");
            assert!(
                err.contains(&case.names),
                "{what}: the error does not name {}: {err}",
                case.names
            );
            let left: Vec<_> = std::fs::read_dir(&out_dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "data.yaml")
                .collect();
            assert!(left.is_empty(), "{what}: left {left:?}");
            runs += 1;
        }
    }
    assert_eq!(snapshot(inputs.path()), before, "an input was changed");
    assert!(!root().join("PWNED").exists() && !inputs.path().join("PWNED").exists());
    // The size of the corpus, for the record (quoted in the issue's closing note).
    eprintln!(
        "bad-input corpus: {} cases, {runs} command runs",
        cases.len()
    );
    assert!(runs >= 100, "{runs}");
}
