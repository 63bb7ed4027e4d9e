//! Inputs that used to give a wrong answer without a word, or an abort (issue #19): each is
//! now read correctly or refused with an error naming the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use dia_data::{check_dataset, load_images, read_npz_split, Split};

fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn err(input: &Path) -> String {
    load_images(input, 4).unwrap_err().to_string()
}

#[test]
fn npy_inputs_must_be_float_images_in_the_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let good = write(
        "good.npy",
        npy_bytes("<f4", "(1, 3, 2, 2)", &f32_bytes(&[0.5; 12])),
    );
    let (x, names) = load_images(&good, 4).unwrap();
    assert_eq!(
        (x.dims(), names[0].ends_with("good.npy[0]")),
        (&[1, 3, 2, 2][..], true)
    );
    let u8 = write("u8.npy", npy_bytes("|u1", "(1, 3, 2, 2)", &[200; 12]));
    let e = err(&u8);
    assert!(
        e.contains("u8.npy") && e.contains("U8") && e.contains("255"),
        "{e}"
    );
    let mut big = [0.5f32; 12];
    big[3] = 500.0;
    let e = err(&write(
        "big.npy",
        npy_bytes("<f4", "(1, 3, 2, 2)", &f32_bytes(&big)),
    ));
    assert!(
        e.contains("big.npy") && e.contains("[0, 1]") && e.contains("500"),
        "{e}"
    );
    big[3] = f32::NAN;
    let e = err(&write(
        "nan.npy",
        npy_bytes("<f4", "(1, 3, 2, 2)", &f32_bytes(&big)),
    ));
    assert!(e.contains("nan.npy") && e.contains("NaN"), "{e}");
    let e = err(&write(
        "shape.npy",
        npy_bytes("<f4", "(3, 2, 2)", &f32_bytes(&[0.5; 12])),
    ));
    assert!(e.contains("shape.npy") && e.contains("(N, 3, H, W)"), "{e}");
    // A header claiming 4e9 images of 28x28 is refused before anything is allocated.
    let e = err(&write(
        "huge.npy",
        npy_bytes("<f4", "(4000000000, 3, 28, 28)", &[0; 48]),
    ));
    assert!(e.contains("huge.npy") && e.contains("48 bytes"), "{e}");
    let e = load_images(&good, 100_000).unwrap_err().to_string();
    assert!(e.contains("100000") && e.contains("4096"), "{e}");
}

fn png(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]))
        .save(path)
        .unwrap();
}

#[test]
fn a_single_image_file_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.png");
    png(&p);
    let (x, names) = load_images(&p, 4).unwrap();
    assert_eq!(x.dims(), [1, 3, 4, 4]);
    assert_eq!(names, [p.display().to_string()]);
}

/// `root/{train,test}/{a,b}/` with two images per class.
fn folder_dataset(root: &Path) {
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            for i in 0..2 {
                png(&root.join(split).join(class).join(format!("{i}.png")));
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn symlinked_class_folders_are_followed_and_broken_links_refused() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (real, root) = (dir.path().join("real"), dir.path().join("ds"));
    folder_dataset(&real);
    for split in ["train", "test"] {
        std::fs::create_dir_all(root.join(split)).unwrap();
        symlink(real.join(split).join("a"), root.join(split).join("a")).unwrap();
        symlink(real.join(split).join("b"), root.join(split).join("b")).unwrap();
    }
    let report = check_dataset(&root).unwrap();
    let text = report.to_string();
    assert!(report.is_ok(), "{text}");
    assert!(text.contains(" a ") || text.contains("a "), "{text}");
    assert_eq!(
        text.matches("     2").count(),
        4,
        "both classes in both splits: {text}"
    );
    let ds = dia_data::FolderDataset::scan(&root.join("test"), None, None).unwrap();
    assert_eq!(dia_data::Dataset::len(&ds), 4);
    // A dangling link named like an image, and a link loop, are errors naming them.
    let dangling = root.join("test/a/gone.png");
    symlink(dir.path().join("nowhere.png"), real.join("test/a/gone.png")).unwrap();
    let e = dia_data::FolderDataset::scan(&root.join("test"), None, None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.png") && e.contains("symbolic link"), "{e}");
    assert!(!check_dataset(&root).map(|r| r.is_ok()).unwrap_or(false));
    std::fs::remove_file(&dangling).unwrap();
    let loop_dir = dir.path().join("loop");
    std::fs::create_dir_all(&loop_dir).unwrap();
    png(&loop_dir.join("x.png"));
    symlink(&loop_dir, loop_dir.join("again")).unwrap();
    let e = err(&loop_dir);
    assert!(e.contains("reached twice"), "{e}");
}

#[test]
fn truncated_jpegs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jpg");
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 1]))
        .save(&p)
        .unwrap();
    assert!(load_images(&p, 32).is_ok());
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = err(&p);
    assert!(e.contains("x.jpg") && e.contains("truncated"), "{e}");
}

fn npz(path: &Path, entries: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn split_arrays(split: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("{split}_images"),
            npy_bytes("|u1", &format!("({n}, 2, 2)"), &vec![7; n * 4]),
        ),
        (
            format!("{split}_labels"),
            npy_bytes(
                "<i8",
                &format!("({n}, 1)"),
                &(0..n as i64)
                    .flat_map(|l| (l % 2).to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
        ),
    ]
}

fn refs(v: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    v.iter().map(|(k, b)| (k.as_str(), b.clone())).collect()
}

#[test]
fn compressed_npz_reads_and_broken_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = split_arrays("train", 4);
    all.extend(split_arrays("test", 2));
    let p: PathBuf = dir.path().join("deflated.npz");
    npz(&p, &refs(&all), zip::CompressionMethod::Deflated);
    let train = read_npz_split(&p, Split::Train, None, None).unwrap();
    assert_eq!(dia_data::Dataset::len(&train), 4);
    assert!(check_dataset(&p).unwrap().is_ok());
    // test_labels missing: half a split is a problem, not an absent split.
    let q = dir.path().join("nolabels.npz");
    npz(&q, &refs(&all[..3]), zip::CompressionMethod::Stored);
    let report = check_dataset(&q).unwrap();
    assert!(!report.is_ok(), "{report}");
    assert!(
        report.to_string().contains("without \"test_labels\""),
        "{report}"
    );
    // A header claiming (4e9, 28, 28) images is an error, not an abort.
    let mut lying = all.clone();
    lying[0].1 = npy_bytes("|u1", "(4000000000, 28, 28)", &[0; 16]);
    let r = dir.path().join("lying.npz");
    npz(&r, &refs(&lying), zip::CompressionMethod::Deflated);
    let e = read_npz_split(&r, Split::Train, None, None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("lying.npz") && e.contains("16 bytes"), "{e}");
}

#[test]
fn an_npz_label_of_nine_quintillion_is_an_error_not_an_abort() {
    // Found by the npy_npz fuzz target: one class name per label value was allocated.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("label.npz");
    let huge = (9_000_000_000_000_000_000i64).to_le_bytes();
    npz(
        &p,
        &[
            ("train_images", npy_bytes("|u1", "(1, 2, 2)", &[0; 4])),
            ("train_labels", npy_bytes("<i8", "(1,)", &huge)),
        ],
        zip::CompressionMethod::Stored,
    );
    let e = read_npz_split(&p, Split::Train, None, None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("label.npz") && e.contains("65536"), "{e}");
}
