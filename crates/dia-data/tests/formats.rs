//! IDX, NPZ and the embedded sample: reading, and refusing bad files with their name.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use dia_data::*;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fashion-mnist-sample")
}

fn err_of<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let arr = IdxArray {
        dims: vec![3, 2, 4],
        data: (0..24).collect(),
    };
    for name in ["a-idx3-ubyte", "a-idx3-ubyte.gz"] {
        let p = dir.path().join(name);
        write_idx(&p, &arr).unwrap();
        assert_eq!(read_idx(&p).unwrap(), arr);
    }
    // The gzip file really is gzip.
    let gz = std::fs::read(dir.path().join("a-idx3-ubyte.gz")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
}

#[test]
fn bad_idx_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = {
        let mut b = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 2].to_vec(), "truncated"),
        (
            "trailing",
            [good.clone(), vec![9]].concat(),
            "trailing bytes",
        ),
        (
            "magic",
            [vec![1, 2], good[2..].to_vec()].concat(),
            "not an IDX file",
        ),
        (
            "type",
            [vec![0, 0, 0x0d], good[3..].to_vec()].concat(),
            "type code",
        ),
        ("header", good[..6].to_vec(), "truncated IDX header"),
        ("empty", vec![], "truncated IDX header"),
        (
            "huge",
            vec![
                0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 9,
            ],
            "too large",
        ),
    ];
    for (name, bytes, expected) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = err_of(read_idx(&p));
        assert!(msg.contains(expected), "{name}: {msg}");
        assert!(
            msg.contains(p.to_str().unwrap()),
            "{name}: message does not name the file: {msg}"
        );
    }
    // A truncated gzip stream is an error too, not a panic.
    let p = dir.path().join("cut.gz");
    write_idx(
        &p,
        &IdxArray {
            dims: vec![1000],
            data: vec![7; 1000],
        },
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_of(read_idx(&p));
    assert!(msg.contains("cut.gz"), "{msg}");
    assert!(err_of(read_idx(&dir.path().join("missing"))).contains("missing"));
}

#[test]
fn idx_image_and_label_counts_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(
        &dir.path().join("train-images-idx3-ubyte"),
        &IdxArray {
            dims: vec![2, 2, 2],
            data: vec![0; 8],
        },
    )
    .unwrap();
    write_idx(
        &dir.path().join("train-labels-idx1-ubyte"),
        &IdxArray {
            dims: vec![3],
            data: vec![0; 3],
        },
    )
    .unwrap();
    let msg = err_of(open_idx(dir.path(), Split::Train, None, None));
    assert!(
        msg.contains("train-labels-idx1-ubyte") && msg.contains("expected 2 labels"),
        "{msg}"
    );
    let msg = err_of(open_idx(dir.path(), Split::Test, None, None));
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
}

#[test]
fn embedded_sample_opens_with_class_names() {
    let src = DataSource::Idx {
        dir: sample_dir(),
        classes: None,
    };
    let train = src.open(Split::Train, None).unwrap();
    let test = src.open(Split::Test, None).unwrap();
    assert_eq!((train.len(), test.len()), (3000, 1000));
    assert_eq!(train.classes(), FASHION_MNIST_CLASSES.map(String::from));
    for c in 0..10 {
        assert_eq!(train.labels().iter().filter(|&&l| l == c).count(), 300);
        assert_eq!(test.labels().iter().filter(|&&l| l == c).count(), 100);
    }
    let x = train.load(0).unwrap();
    assert_eq!(x.len(), 3 * 28 * 28);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(x[..784], x[784..1568], "grey becomes three equal channels");
    assert!(x.iter().any(|&v| v > 0.5), "a real image, not zeros");
    // Resized on request.
    let big = src.open(Split::Train, Some((32, 32))).unwrap();
    assert_eq!(big.load(0).unwrap().len(), 3 * 32 * 32);
}

#[test]
fn full_fashion_mnist_from_debian() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        eprintln!(
            "skipped: {} absent (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let train = open_idx(dir, Split::Train, None, None).unwrap();
    let test = open_idx(dir, Split::Test, None, None).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    for c in 0..10 {
        assert_eq!(train.labels().iter().filter(|&&l| l == c).count(), 6000);
    }
}

fn write_npz(path: &Path, entries: &[(&str, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = entries.iter().map(|(n, t)| (*n, t)).collect();
    Tensor::write_npz(&refs, path).unwrap();
}

#[test]
fn medmnist_npz_grey_and_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let grey = Tensor::from_vec(
        (0..4 * 28 * 28)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
        (4, 28, 28),
        &dev,
    )
    .unwrap();
    let rgb = Tensor::from_vec(vec![200u8; 2 * 28 * 28 * 3], (2, 28, 28, 3), &dev).unwrap();
    let labels4 = Tensor::from_vec(vec![0u8, 1, 1, 0], (4, 1), &dev).unwrap();
    let labels2 = Tensor::from_vec(vec![1u8, 0], (2, 1), &dev).unwrap();
    let p = dir.path().join("pneumoniamnist.npz");
    write_npz(
        &p,
        &[
            ("train_images", grey),
            ("train_labels", labels4),
            ("test_images", rgb),
            ("test_labels", labels2),
        ],
    );
    let names = Some(vec!["normal".to_string(), "pneumonia".to_string()]);
    let train = read_npz_split(&p, Split::Train, names.clone(), None).unwrap();
    assert_eq!((train.len(), train.labels()), (4, vec![0, 1, 1, 0]));
    assert_eq!(train.classes()[1], "pneumonia");
    let x = train.load(1).unwrap();
    assert_eq!(x[5], ((784 + 5) % 251) as f32 / 255.0);
    let test = read_npz_split(&p, Split::Test, names, Some((32, 32))).unwrap();
    assert_eq!(test.load(0).unwrap().len(), 3 * 32 * 32);
    // A missing split names the file and the split.
    let msg = err_of(read_npz_split(&p, Split::Val, None, None));
    assert!(
        msg.contains("pneumoniamnist.npz") && msg.contains("val"),
        "{msg}"
    );
    // Truncated and garbage files are errors, not panics.
    let bytes = std::fs::read(&p).unwrap();
    for (name, content) in [
        ("cut.npz", bytes[..bytes.len() / 3].to_vec()),
        ("junk.npz", b"not a zip".to_vec()),
    ] {
        let q = dir.path().join(name);
        std::fs::write(&q, content).unwrap();
        let msg = err_of(read_npz_split(&q, Split::Train, None, None));
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn npz_with_wrong_shapes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let p = dir.path().join("bad.npz");
    let imgs = Tensor::zeros((3, 28, 28), candle_core::DType::U8, &dev).unwrap();
    let labels = Tensor::zeros((2, 1), candle_core::DType::U8, &dev).unwrap();
    write_npz(&p, &[("train_images", imgs), ("train_labels", labels)]);
    let msg = err_of(read_npz_split(&p, Split::Train, None, None));
    assert!(msg.contains("2 labels for 3 images"), "{msg}");
    let q = dir.path().join("float.npz");
    let imgs = Tensor::zeros((3, 28, 28), candle_core::DType::F32, &dev).unwrap();
    let labels = Tensor::zeros((3, 1), candle_core::DType::U8, &dev).unwrap();
    write_npz(&q, &[("train_images", imgs), ("train_labels", labels)]);
    assert!(err_of(read_npz_split(&q, Split::Train, None, None)).contains("expected uint8"));
}

#[test]
fn data_source_yaml_rejects_unknown_fields() {
    let ok: DataSource = serde_yaml::from_str("format: idx\ndir: /tmp/x\n").unwrap();
    assert!(matches!(ok, DataSource::Idx { .. }));
    let folder: DataSource = serde_yaml::from_str(
        "format: folder\nroot: data/oct\nclasses:\n  - {name: normal, folders: [NORMAL]}\n  - {name: abnormal, folders: [CNV, DME, DRUSEN]}\n",
    )
    .unwrap();
    match folder {
        DataSource::Folder {
            classes: Some(m), ..
        } => assert_eq!(m.label_of("DRUSEN"), Some(1)),
        other => panic!("{other:?}"),
    }
    let err = serde_yaml::from_str::<DataSource>("format: idx\ndir: x\nroot: y\n").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(serde_yaml::from_str::<DataSource>("format: csv\npath: x\n").is_err());
}
