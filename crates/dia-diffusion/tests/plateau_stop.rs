//! DDPM training that stops on a plateau of its smoothed loss (issue #16): it stops before
//! `steps`, says so in the checkpoint, counts as finished, measures its dissolving strength at
//! every checkpoint, and an interrupted run resumed stops at the same step with the same
//! weights.

use candle_core::Device;
use dia_diffusion::train::{is_finished, is_finished_by_metrics, train, RunOptions};
use dia_diffusion::DdpmConfig;

fn config(threshold: f64) -> DdpmConfig {
    let yaml = format!(
        r#"
data: {{format: idx, dir: {}}}
normal_classes: [Trouser]
image_size: 16
unet: {{dim: 8, dim_mults: [1, 2]}}
batch_size: 4
steps: 40
save_every: 3
num_samples: 0
plateau: {{window: 3, threshold: {threshold}, min_steps: 7}}
"#,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/fashion-mnist-sample"
        )
    );
    serde_yaml::from_str(&yaml).unwrap()
}

fn losses(dir: &std::path::Path) -> Vec<f64> {
    let rows = dia_diffusion::train::read_losses(&dir.join("metrics.csv")).unwrap();
    rows.into_iter().map(|(_, loss)| loss).collect()
}

/// Trains a new run of `cfg` in `dir` to its end.
fn train_new(cfg: &DdpmConfig, dir: &std::path::Path) -> dia_diffusion::train::TrainSummary {
    train(cfg, dir, &Device::Cpu, RunOptions::default(), &mut |_| {}).unwrap()
}

#[test]
fn training_stops_on_a_plateau_and_resumes_to_the_same_stop() {
    // A threshold of 0.9: any window whose smoothed loss fell by less than 90 % is a plateau,
    // so the run stops at min_steps (7), long before its 40 steps.
    let cfg = config(0.9);
    let dir = tempfile::tempdir().unwrap();
    let whole = train_new(&cfg, dir.path());
    assert!(whole.plateaued);
    assert_eq!(whole.steps_done, 7);
    let model = dir.path().join("model.safetensors");
    assert!(is_finished(&model, &cfg).unwrap());
    let (_, meta) = dia_diffusion::checkpoint::read_tensors(&model, &Device::Cpu).unwrap();
    assert!(meta.unwrap().plateaued);
    // The stop follows the rule on the recorded losses.
    let l = losses(dir.path());
    assert_eq!(l.len(), 7);
    let rule = dia_diffusion::plateau::PlateauConfig {
        window: 3,
        threshold: 0.9,
        min_steps: 7,
    };
    assert!(dia_diffusion::plateau::plateaued(&l, &rule));
    assert!(!dia_diffusion::plateau::plateaued(&l[..6], &rule));
    // The record alone says the same, without the weights.
    let metrics = dir.path().join("metrics.csv");
    assert!(is_finished_by_metrics(&metrics, &cfg).unwrap());
    // Strength at the checkpoints of steps 3, 6 and the stop (7): three t each.
    let s = std::fs::read_to_string(dir.path().join("strength.csv")).unwrap();
    let steps: Vec<&str> = s
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps, ["3", "3", "3", "6", "6", "6", "7", "7", "7"], "{s}");
    assert_eq!(whole.strength.len(), 3);
    assert!(whole
        .strength
        .iter()
        .all(|s| s.mean_abs_change > 0.0 && s.psnr_db.is_finite()));

    // Interrupted after 4 steps, then resumed: the same stop, the same weights, the same rows.
    let dir2 = tempfile::tempdir().unwrap();
    let stop = RunOptions {
        resume: false,
        stop_after_steps: Some(4),
    };
    let part = train(&cfg, dir2.path(), &Device::Cpu, stop, &mut |_| {}).unwrap();
    assert!(!part.plateaued);
    assert!(!is_finished(&dir2.path().join("model.safetensors"), &cfg).unwrap());
    assert!(!is_finished_by_metrics(&dir2.path().join("metrics.csv"), &cfg).unwrap());
    let resume = RunOptions {
        resume: true,
        stop_after_steps: None,
    };
    let rest = train(&cfg, dir2.path(), &Device::Cpu, resume, &mut |_| {}).unwrap();
    assert!(rest.plateaued);
    assert_eq!(rest.steps_done, 7);
    assert_eq!(losses(dir2.path()), l);
    // The same strength rows, plus those of the interruption's own checkpoint (step 4).
    let resumed = std::fs::read_to_string(dir2.path().join("strength.csv")).unwrap();
    let without_4: Vec<&str> = resumed.lines().filter(|l| !l.starts_with("4,")).collect();
    assert_eq!(without_4, s.lines().collect::<Vec<_>>());
    assert_eq!(resumed.lines().filter(|l| l.starts_with("4,")).count(), 3);
    // The same weights, bit for bit, and the same metadata (the file's bytes may differ: the
    // safetensors header stores its metadata map in no fixed order).
    let read =
        |p: &std::path::Path| dia_diffusion::checkpoint::read_tensors(p, &Device::Cpu).unwrap();
    let (a, meta_a) = read(&dir2.path().join("model.safetensors"));
    let (b, meta_b) = read(&model);
    assert_eq!(meta_a, meta_b);
    assert_eq!(a.len(), b.len());
    for (k, v) in &a {
        let x: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[k].flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{k}"
        );
    }
    // Resuming a run that already stopped trains nothing more.
    let again = train(&cfg, dir2.path(), &Device::Cpu, resume, &mut |_| {}).unwrap();
    assert!(again.plateaued && again.first_loss.is_nan());
    assert_eq!(losses(dir2.path()).len(), 7);
}

#[test]
fn without_a_plateau_the_run_takes_its_steps() {
    // No plateau rule: the run takes exactly its 9 steps.
    let mut cfg = config(0.0);
    cfg.steps = 9;
    cfg.plateau = None;
    let dir = tempfile::tempdir().unwrap();
    let s = train_new(&cfg, dir.path());
    assert!(!s.plateaued);
    assert_eq!(s.steps_done, 9);
    assert!(is_finished(&dir.path().join("model.safetensors"), &cfg).unwrap());
    let metrics = dir.path().join("metrics.csv");
    assert!(is_finished_by_metrics(&metrics, &cfg).unwrap());
    // One step short of the end (the last row dropped) is not finished.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let short: Vec<&str> = text.lines().take(9).collect();
    std::fs::write(&metrics, short.join("\n")).unwrap();
    assert!(!is_finished_by_metrics(&metrics, &cfg).unwrap());
}
