//! A tiny experiment grid run in-process: typed results for every cell (a renamed `Report`
//! field is a compile error in `CellResult::from_report`, not a NaN), the tables written, and
//! a second run reading the finished cells back unchanged.

use candle_core::Device;
use dia_pipeline::experiment::{run_grid, ExperimentConfig, Method};
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
