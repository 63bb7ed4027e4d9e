//! Image folders, class maps, splits, protocols and the batch loader.

use std::path::Path;
use std::sync::Arc;

use dia_data::*;
use proptest::prelude::*;

/// Writes a `w`×`h` PNG filled with grey level `v`.
fn png(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

fn err_of<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// ROOT/{train,test}/{0_normal,1_abnormal}/ with a few images.
fn two_class_tree(root: &Path) {
    for (split, n) in [("train", 3), ("test", 2)] {
        for (class, v) in [("0_normal", 10u8), ("1_abnormal", 200u8)] {
            for i in 0..n {
                png(
                    &root.join(split).join(class).join(format!("{i}.png")),
                    20,
                    12,
                    v,
                );
            }
        }
    }
}

#[test]
fn folder_layout_with_the_reference_convention() {
    let dir = tempfile::tempdir().unwrap();
    two_class_tree(dir.path());
    let src = DataSource::Folder {
        root: dir.path().into(),
        classes: None,
        split_file: None,
    };
    let train = src.open(Split::Train, Some((8, 16))).unwrap();
    assert_eq!(train.classes(), ["0_normal", "1_abnormal"]);
    assert_eq!(train.labels(), [0, 0, 0, 1, 1, 1]);
    assert_eq!(train.image_size(), (8, 16));
    let x = train.load(4).unwrap();
    assert_eq!(x.len(), 3 * 8 * 16);
    assert!(x.iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6));
    let test = src.open(Split::Test, None).unwrap();
    let (tr, te) = protocol_subsets(
        &Protocol::OneClass(vec!["0_normal".into()]),
        train.as_ref(),
        test.as_ref(),
    )
    .unwrap();
    assert_eq!(tr.indices, [0, 1, 2]);
    assert_eq!(te.normal, [true, true, false, false]);
    // Images of another size are refused when no size is configured.
    png(&dir.path().join("test/1_abnormal/odd.png"), 5, 5, 0);
    let test = src.open(Split::Test, None).unwrap();
    let odd = (0..test.len())
        .find(|&i| test.source(i).ends_with("odd.png"))
        .unwrap();
    assert!(err_of(test.load(odd)).contains("odd.png"));
    // A missing split names the folder.
    let msg = err_of(src.open(Split::Val, None));
    assert!(
        msg.contains("val") && msg.contains("split folder not found"),
        "{msg}"
    );
}

#[test]
fn class_map_merges_folders_and_rejects_strangers() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("CNV", 2), ("DME", 1), ("DRUSEN", 1), ("NORMAL", 3)] {
        for i in 0..n {
            png(
                &dir.path()
                    .join("train")
                    .join(class)
                    .join(format!("{i}.jpeg")),
                4,
                4,
                1,
            );
        }
    }
    let map = ClassMap::from_yaml_pairs(&[
        ("normal", &["NORMAL"]),
        ("abnormal", &["CNV", "DME", "DRUSEN"]),
    ]);
    let ds = FolderDataset::scan(&dir.path().join("train"), Some(&map), None).unwrap();
    assert_eq!(ds.classes(), ["normal", "abnormal"]);
    assert_eq!(ds.labels(), [1, 1, 1, 1, 0, 0, 0]);
    png(&dir.path().join("train/EXTRA/0.png"), 4, 4, 1);
    let msg = err_of(FolderDataset::scan(
        &dir.path().join("train"),
        Some(&map),
        None,
    ));
    assert!(
        msg.contains("EXTRA") && msg.contains("not in the class map"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir.path().join("train/EXTRA")).unwrap();
    std::fs::remove_dir_all(dir.path().join("train/DME")).unwrap();
    let msg = err_of(FolderDataset::scan(
        &dir.path().join("train"),
        Some(&map),
        None,
    ));
    assert!(msg.contains("DME") && msg.contains("missing"), "{msg}");
}

#[test]
fn empty_class_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("train/a/0.png"), 4, 4, 1);
    std::fs::create_dir_all(dir.path().join("train/b")).unwrap();
    std::fs::write(dir.path().join("train/b/notes.txt"), "not an image").unwrap();
    let msg = err_of(FolderDataset::scan(&dir.path().join("train"), None, None));
    assert!(msg.contains("train/b") && msg.contains("no .png"), "{msg}");
}

#[test]
fn corrupt_images_fail_with_their_name_and_check_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    two_class_tree(dir.path());
    let bad = dir.path().join("train/1_abnormal/broken.png");
    let good = std::fs::read(dir.path().join("train/1_abnormal/0.png")).unwrap();
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("test/0_normal/fake.jpg"), b"hello").unwrap();
    let ds = FolderDataset::scan(&dir.path().join("train"), None, None).unwrap();
    let i = (0..ds.len())
        .find(|&i| ds.source(i).ends_with("broken.png"))
        .unwrap();
    let msg = err_of(ds.load(i));
    assert!(
        msg.contains("broken.png") && msg.contains("cannot decode"),
        "{msg}"
    );
    // The loader surfaces the same error instead of panicking.
    let loader = BatchLoader::new(Arc::new(ds), (0..7).collect(), 7).unwrap();
    let msg = err_of(loader.epoch(0).next().unwrap());
    assert!(msg.contains("broken.png"), "{msg}");

    let report = check_folder(dir.path()).unwrap();
    assert!(!report.is_ok());
    let paths: Vec<String> = report
        .problems
        .iter()
        .map(|p| p.path.display().to_string())
        .collect();
    assert_eq!(report.problems.len(), 2, "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("broken.png")));
    assert!(paths.iter().any(|p| p.ends_with("fake.jpg")));
    let text = report.to_string();
    assert!(
        text.contains("train: 6 images") && text.contains("20x12 (3)"),
        "{text}"
    );
}

#[test]
fn check_accepts_a_folder_of_classes_and_a_clean_tree() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("a/0.png"), 4, 4, 1);
    png(&dir.path().join("b/0.png"), 4, 6, 1);
    let report = check_folder(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.splits[0].classes.len(), 2);
    assert!(check_folder(&dir.path().join("nope")).is_err());
}

#[test]
fn split_files_are_stratified_reproducible_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("raw");
    for (class, n) in [("normal", 10), ("polyps", 5)] {
        for i in 0..n {
            png(&root.join(class).join(format!("{i:02}.png")), 4, 4, i as u8);
        }
    }
    let recipe = SplitRecipe {
        test: 0.2,
        val: 0.1,
        seed: 3,
    };
    let file = dir.path().join("split.csv");
    let counts = write_split_file(&root, &recipe, &file).unwrap();
    // normal: 2 test, 1 val, 7 train; polyps: 1 test (5 x 0.2), 1 val (5 x 0.1 rounds up), 3 train.
    assert_eq!(counts.iter().sum::<usize>(), 15);
    assert_eq!(counts[2], 3);
    let first = std::fs::read_to_string(&file).unwrap();
    write_split_file(&root, &recipe, &file).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        first,
        "same seed, same split"
    );
    write_split_file(
        &root,
        &SplitRecipe { seed: 4, ..recipe },
        &dir.path().join("other.csv"),
    )
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(dir.path().join("other.csv")).unwrap(),
        first
    );

    let src = DataSource::Folder {
        root: root.clone(),
        classes: None,
        split_file: Some(file.clone()),
    };
    let mut seen = 0;
    for split in [Split::Train, Split::Val, Split::Test] {
        let ds = src.open(split, None).unwrap();
        assert_eq!(ds.classes(), ["normal", "polyps"]);
        seen += ds.len();
    }
    assert_eq!(seen, 15, "every image in exactly one split");

    // A listed file that disappeared, an escaping path and a missing split are refused.
    let listed = first
        .lines()
        .nth(2)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .to_string();
    std::fs::rename(root.join(&listed), dir.path().join("moved.png")).unwrap();
    let split_of = first.lines().nth(2).unwrap().split(',').next().unwrap();
    let split = match split_of {
        "train" => Split::Train,
        "val" => Split::Val,
        _ => Split::Test,
    };
    let msg = err_of(src.open(split, None));
    assert!(msg.contains(&listed) && msg.contains("missing"), "{msg}");
    let evil = dir.path().join("evil.csv");
    std::fs::write(&evil, "split,class,path\ntrain,normal,../../etc/passwd\n").unwrap();
    let msg = err_of(read_split_file(&root, &evil, Split::Train, None, None));
    assert!(msg.contains("leaves the dataset root"), "{msg}");
    let only_train = dir.path().join("train_only.csv");
    std::fs::write(
        &only_train,
        "split,class,path\ntrain,normal,normal/00.png\n",
    )
    .unwrap();
    let msg = err_of(read_split_file(&root, &only_train, Split::Test, None, None));
    assert!(
        msg.contains("train_only.csv") && msg.contains("no \"test\""),
        "{msg}"
    );
    std::fs::write(&only_train, "path,split\n").unwrap();
    assert!(
        err_of(read_split_file(&root, &only_train, Split::Test, None, None)).contains("header")
    );
}

#[test]
fn protocols() {
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let train = ArrayDataset::new(
        "tr",
        vec![0; 6],
        (6, 1, 1, 1),
        vec![0, 1, 2, 0, 1, 2],
        classes.clone(),
        None,
    )
    .unwrap();
    let test =
        ArrayDataset::new("te", vec![0; 3], (3, 1, 1, 1), vec![2, 1, 0], classes, None).unwrap();
    let (tr, te) = protocol_subsets(
        &Protocol::OneClass(vec!["b".into(), "2".into()]),
        &train,
        &test,
    )
    .unwrap();
    assert_eq!(tr.indices, [1, 2, 4, 5]);
    assert_eq!(te.normal, [true, true, false]);
    let (tr, te) = protocol_subsets(&Protocol::MultiClass, &train, &test).unwrap();
    assert_eq!((tr.len(), te.n_normal()), (6, 3));
    assert!(protocol_subsets(&Protocol::OneClass(vec!["z".into()]), &train, &test).is_err());
    assert!(protocol_subsets(&Protocol::OneClass(vec![]), &train, &test).is_err());
}

fn toy(n: usize) -> Arc<dyn Dataset> {
    // Image i is filled with i % 256 so batches can be traced back to their samples.
    let pixels: Vec<u8> = (0..n)
        .flat_map(|i| std::iter::repeat_n((i % 256) as u8, 4))
        .collect();
    Arc::new(
        ArrayDataset::new(
            "toy",
            pixels,
            (n, 2, 2, 1),
            (0..n).map(|i| i % 3).collect(),
            vec!["0".into(), "1".into(), "2".into()],
            None,
        )
        .unwrap(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn loader_yields_every_sample_once_per_epoch(n in 1usize..200, bs in 1usize..40, seed in any::<u64>(), epoch in 0u64..5) {
        let ds = toy(n);
        let loader = BatchLoader::new(Arc::clone(&ds), (0..n).collect(), bs).unwrap().shuffle(seed);
        let mut seen = Vec::new();
        let mut batches = 0;
        for b in loader.epoch(epoch) {
            let b = b.unwrap();
            prop_assert!(b.indices.len() <= bs);
            prop_assert_eq!(b.images.dims(), &[b.indices.len(), 3, 2, 2]);
            let first: Vec<f32> = b.images.flatten_all().unwrap().to_vec1().unwrap();
            for (k, &i) in b.indices.iter().enumerate() {
                prop_assert_eq!(first[k * 12], (i % 256) as f32 / 255.0);
                prop_assert_eq!(b.labels[k], i % 3);
            }
            seen.extend(b.indices);
            batches += 1;
        }
        prop_assert_eq!(batches, loader.batches_per_epoch());
        let order = seen.clone();
        seen.sort();
        prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
        // The order is a function of (seed, epoch).
        prop_assert_eq!(loader.order(epoch), order);
    }
}

#[test]
fn loader_shuffles_per_epoch_and_drops_last_on_request() {
    let loader = BatchLoader::new(toy(100), (0..100).collect(), 32)
        .unwrap()
        .shuffle(1);
    assert_ne!(loader.order(0), loader.order(1));
    assert_ne!(loader.order(0), (0..100).collect::<Vec<_>>());
    let dropped = loader.clone().drop_last(true);
    assert_eq!(dropped.batches_per_epoch(), 3);
    assert_eq!(dropped.epoch(0).count(), 3);
    assert_eq!(loader.epoch(0).count(), 4);
    let ordered = BatchLoader::new(toy(5), vec![4, 2], 1).unwrap();
    assert_eq!(ordered.order(9), [4, 2]);
    assert!(BatchLoader::new(toy(5), vec![5], 1).is_err());
    assert!(BatchLoader::new(toy(5), vec![0], 0).is_err());
    // Dropping the iterator early stops the decoding thread (no hang).
    let mut it = loader.epoch(2);
    it.next().unwrap().unwrap();
    drop(it);
}
