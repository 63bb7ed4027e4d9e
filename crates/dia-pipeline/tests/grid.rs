//! A tiny experiment grid run in-process: typed results for every cell (a renamed `Report`
//! field is a compile error in `CellResult::from_report`, not a NaN), the tables written, and
//! a second run reading the finished cells back unchanged.

use candle_core::Device;
use dia_pipeline::experiment::{
    archive, collect, ddpm_summaries, run_grid, ExperimentConfig, Method,
};
use dia_pipeline::Quiet;

fn config() -> ExperimentConfig {
    let yaml = format!(
        r#"
train:
  data: {{format: idx, dir: {}}}
  image_size: 32
  mode: csi
  shift_trans_type: rotation
  encoder: {{arch: resnet18, width: 4}}
  epochs: 1
  batch_size: 4
  max_iterations_per_epoch: 2
ddpm:
  unet: {{dim: 8, dim_mults: [1, 2]}}
  batch_size: 4
  steps: 2
  save_every: 2
  num_samples: 0
methods: [csi, dia-diffusion, dia-gaussian]
normal_classes: ["Trouser"]
seeds: [1]
eval: {{score: csi, ood_samples: 1}}
"#,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/fashion-mnist-sample"
        )
    );
    serde_yaml::from_str(&yaml).unwrap()
}

#[test]
fn a_tiny_grid_gives_typed_results_and_reads_them_back() {
    let cfg = config();
    cfg.check().unwrap();
    assert_eq!(cfg.methods[1], Method::DiaDiffusion);
    let dir = tempfile::tempdir().unwrap();
    let results = run_grid(&cfg, dir.path(), 2, &Device::Cpu, &Quiet).unwrap();
    let methods: Vec<&str> = results.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["csi", "dia-diffusion", "dia-gaussian"]);
    for r in &results {
        assert_eq!((r.class.as_str(), r.seed), ("Trouser", 1));
        assert!((0.0..=1.0).contains(&r.auroc), "{r:?}");
        assert!(
            r.auroc_ci_low <= r.auroc && r.auroc <= r.auroc_ci_high,
            "{r:?}"
        );
        assert!(r.train_seconds > 0.0, "{r:?}");
        // The typed report of the cell is where the numbers came from.
        let report = dia_pipeline::read_report(&r.run.join("eval/report.json")).unwrap();
        assert_eq!(report.pooled.auroc, r.auroc);
    }
    assert!(dir.path().join("ddpm/trouser/model.safetensors").is_file());
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // Finished cells are read back, not re-run: the same results.
    let again = run_grid(&cfg, dir.path(), 1, &Device::Cpu, &Quiet).unwrap();
    assert_eq!(again, results);

    // The records without the weights read back as the grid itself: the same results and
    // the same DDPM summary (finished by its metrics.csv, plateau flag included).
    let records = tempfile::tempdir().unwrap();
    let a = archive(dir.path(), records.path()).unwrap();
    assert!(a.files > 0 && a.bytes > 0);
    let mut left: Vec<String> = a.left_out.iter().map(|p| p.display().to_string()).collect();
    left.sort();
    assert!(
        left.contains(&"ddpm/trouser/model.safetensors".to_string()),
        "{left:?}"
    );
    assert!(
        left.iter()
            .all(|p| p.ends_with(".safetensors") || p.ends_with("eval/scores.csv")),
        "{left:?}"
    );
    let mut stack = vec![records.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            assert!(!p.to_string_lossy().ends_with(".safetensors"), "{p:?}");
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    let from_records = collect(&cfg, records.path()).unwrap();
    assert_eq!(from_records.len(), results.len());
    for (r, q) in from_records.iter().zip(&results) {
        assert_eq!((&r.method, r.seed, r.auroc), (&q.method, q.seed, q.auroc));
        assert_eq!(r.train_seconds, q.train_seconds);
    }
    let here = ddpm_summaries(&cfg, dir.path()).unwrap();
    let there = ddpm_summaries(&cfg, records.path()).unwrap();
    assert_eq!(here.len(), 1);
    assert_eq!(there.len(), 1);
    let (h, t) = (&here[0].1, &there[0].1);
    assert_eq!(
        (h.steps, h.plateaued, &h.strength),
        (t.steps, t.plateaued, &t.strength)
    );
    assert_eq!(h.smoothed_loss, t.smoothed_loss);
}

#[test]
fn a_grid_without_a_ddpm_section_is_refused_before_running() {
    let mut cfg = config();
    cfg.ddpm = None;
    let e = cfg.check().unwrap_err().to_string();
    assert!(e.contains("needs a `ddpm` section"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    assert!(run_grid(&cfg, dir.path(), 0, &Device::Cpu, &Quiet).is_err());
}

/// Spec §2.2/§2.3: the DDPM keeps its own resolution whatever the encoder's, and trains on
/// padded images exactly where the dissolver pads (28-px images, MedMNIST's `Pad(2)`).
#[test]
fn the_ddpm_keeps_its_resolution_and_pads_only_for_28_px_images() {
    let mut cfg = config();
    let ddpm = |cfg: &ExperimentConfig| cfg.ddpm_config("Trouser").unwrap();
    // A 224-px encoder (the paper's medical sets): the DDPM stays at 32, resized into.
    cfg.train.image_size = Some(224);
    let d = ddpm(&cfg);
    assert_eq!((d.image_size, d.pad), (32, 0));
    // 32-px encoder images (resized from 28 on load): no padding either.
    cfg.train.image_size = Some(32);
    assert_eq!((ddpm(&cfg).image_size, ddpm(&cfg).pad), (32, 0));
    // 28-px encoder images, configured or the files' own size: padded 28 → 32.
    cfg.train.image_size = Some(28);
    assert_eq!((ddpm(&cfg).image_size, ddpm(&cfg).pad), (32, 2));
    cfg.train.image_size = None;
    assert_eq!((ddpm(&cfg).image_size, ddpm(&cfg).pad), (32, 2));
    // A DDPM at 64 px (the resolution study) keeps 64; an explicit pad is kept as written.
    let mut v = cfg.ddpm.clone().unwrap();
    v.as_mapping_mut()
        .unwrap()
        .insert("image_size".into(), 64.into());
    cfg.ddpm = Some(v.clone());
    cfg.train.image_size = Some(224);
    assert_eq!((ddpm(&cfg).image_size, ddpm(&cfg).pad), (64, 0));
    v.as_mapping_mut().unwrap().insert("pad".into(), 0.into());
    v.as_mapping_mut()
        .unwrap()
        .insert("image_size".into(), 32.into());
    cfg.ddpm = Some(v);
    cfg.train.image_size = Some(28);
    assert_eq!(ddpm(&cfg).pad, 0);
}

/// `eval.every_epochs`: every cell records its per-epoch test AUROCs, the reference protocol's
/// best epoch is computed from that list, and `results.md` shows it beside the last epoch,
/// with the paired differences against CSI and the AUROC plot.
#[test]
fn every_epochs_records_the_reference_protocol_and_pairs_against_csi() {
    let mut cfg = config();
    cfg.methods = vec![Method::Csi, Method::DiaGaussian];
    cfg.seeds = vec![0, 1];
    cfg.train.epochs = 3;
    cfg.eval.every_epochs = 1;
    let dir = tempfile::tempdir().unwrap();
    let results = run_grid(&cfg, dir.path(), 2, &Device::Cpu, &Quiet).unwrap();
    assert_eq!(results.len(), 4);
    for r in &results {
        let (_, rows) = dia_io::csv::read_csv(&r.run.join("epochs.csv")).unwrap();
        let list: Vec<(usize, f64)> = rows
            .iter()
            .map(|row| (row[0].parse().unwrap(), row[1].parse().unwrap()))
            .collect();
        assert_eq!(list.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
        // The last entry is the cell's own (last-epoch) AUROC; each earlier one its report's.
        assert_eq!(list[2].1, r.auroc);
        let e1 =
            dia_pipeline::read_report(&r.run.join("eval/epochs/epoch-0001/report.json")).unwrap();
        assert_eq!(list[0].1, e1.pooled.auroc);
        assert_eq!(
            r.best_epoch,
            dia_pipeline::experiment::reference_protocol(&list)
        );
    }
    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains("reference's protocol (optimistic)"), "{md}");
    assert!(
        md.contains("| dia-gaussian |") && md.contains("(n = 2)"),
        "{md}"
    );
    assert!(dir.path().join("auroc.png").is_file());
    // Read back (collect) gives the same results, best epochs included.
    let again = dia_pipeline::experiment::collect(&cfg, dir.path()).unwrap();
    assert_eq!(again, results);
}

/// The recipe that trained the shipped quick-start DDPM is the quick start's own DDPM section.
#[test]
fn the_quickstart_ddpm_config_is_the_shipped_recipe() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("configs/quickstart-ddpm.yaml")).unwrap();
    let committed: dia_diffusion::DdpmConfig = serde_yaml::from_str(&text).unwrap();
    let q = dia_pipeline::Quickstart {
        data: "datasets/fashion-mnist-sample".into(),
        class: "Shirt".into(),
        gaussian: false,
        tiny: false,
        train_ddpm: false,
    };
    let ours = q.experiment().unwrap().ddpm_config("Shirt").unwrap();
    assert_eq!(ours, committed);
}
