//! `dia experiment --slurm` against a real single-node Slurm (issue #18): a tiny grid
//! (2 methods × 2 classes × 1 seed, with its DDPM array) submitted as job arrays finishes,
//! one cell's task is killed mid-run and requeued (`scontrol requeue`) and resumes, and
//! `--collect`'s AUROCs are bit-identical to the same grid run locally with `--jobs 1`.
//!
//! Needs `SLURM_CONF` pointing at a running cluster (`scripts/slurm-cluster.sh start DIR`,
//! which `.ci/run` does); without one the test says so and passes, unless
//! `DIA_REQUIRE_SLURM=1` (set by `.ci/run`) makes a missing cluster a failure.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{dia_with_env, ok, root};

fn slurm_up() -> bool {
    std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo")
            .arg("-h")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn results(out: &Path) -> Vec<(String, String, String)> {
    let (header, rows) = dia_io::csv::read_csv(&out.join("results.csv")).unwrap();
    assert_eq!(&header[..4], ["method", "class", "seed", "auroc"]);
    rows.into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[3].clone()))
        .collect()
}

#[test]
fn a_grid_on_slurm_with_a_requeued_cell_matches_the_local_run() {
    if !slurm_up() {
        assert!(
            std::env::var("DIA_REQUIRE_SLURM").as_deref() != Ok("1"),
            "DIA_REQUIRE_SLURM=1 but no Slurm cluster answers (SLURM_CONF, sinfo)"
        );
        eprintln!(
            "skipped: no Slurm cluster (scripts/slurm-cluster.sh start DIR; export SLURM_CONF)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("slurm-experiment.yaml");
    std::fs::write(
        &cfg,
        format!(
            "train:\n  data: {{format: idx, dir: {}}}\n  image_size: 32\n  mode: csi\n  shift_trans_type: rotation\n  encoder: {{arch: resnet18, width: 8}}\n  epochs: 12\n  batch_size: 8\n  max_iterations_per_epoch: 2\nddpm:\n  unet: {{dim: 8, dim_mults: [1, 2]}}\n  batch_size: 4\n  steps: 2\n  save_every: 2\n  num_samples: 0\nmethods: [csi, dia-diffusion]\nnormal_classes: [Trouser, Bag]\nseeds: [0]\neval: {{ood_samples: 1}}\n",
            root().join("datasets/fashion-mnist-sample").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let one_thread = [("RAYON_NUM_THREADS", "1")];
    let local = dir.path().join("local");
    let t = Instant::now();
    ok(&dia_with_env(
        &[
            "experiment",
            "--config",
            c,
            "--out",
            local.to_str().unwrap(),
            "--jobs",
            "1",
            "--device",
            "cpu",
        ],
        &one_thread,
    ));
    let local_s = t.elapsed().as_secs_f64();

    let out = dir.path().join("slurm");
    let o = out.to_str().unwrap();
    let dry = ok(&dia_with_env(
        &[
            "experiment",
            "--config",
            c,
            "--out",
            o,
            "--slurm",
            "--device",
            "cpu",
            "--dry-run",
        ],
        &[],
    ));
    assert!(
        dry.contains("--array=0-1") && dry.contains("--array=0-3"),
        "{dry}"
    );
    assert!(dry.contains("--dependency=afterok:"), "{dry}");
    let t = Instant::now();
    let submitted = ok(&dia_with_env(
        &[
            "experiment",
            "--config",
            c,
            "--out",
            o,
            "--slurm",
            "--device",
            "cpu",
        ],
        &[],
    ));
    assert!(
        submitted.contains("submitted the cell array"),
        "{submitted}"
    );
    let jobs = std::fs::read_to_string(out.join("slurm/jobs.txt")).unwrap();
    let cell_job = jobs
        .lines()
        .find_map(|l| l.strip_prefix("cell "))
        .unwrap()
        .to_string();
    // Kill cell 0 mid-run (after its first checkpoints, before its report) and requeue it.
    let cell0 = out.join("csi/trouser/seed-0");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let epochs = std::fs::read_to_string(cell0.join("metrics.csv"))
            .map(|m| m.lines().count().saturating_sub(1))
            .unwrap_or(0);
        // Two iterations per epoch: three epochs checkpointed.
        if epochs >= 6 {
            break;
        }
        assert!(
            !cell0.join("eval/report.json").exists(),
            "cell 0 finished before it could be requeued"
        );
        assert!(Instant::now() < deadline, "cell 0 did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rq = Command::new("scontrol")
        .args(["requeue", &format!("{cell_job}_0")])
        .output()
        .unwrap();
    assert!(
        rq.status.success(),
        "{}",
        String::from_utf8_lossy(&rq.stderr)
    );
    // Wait for every task to be done.
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        let s = ok(&dia_with_env(
            &["experiment", "--config", c, "--out", o, "--status"],
            &[],
        ));
        if s.lines().filter(|l| l.contains(" done ")).count() == 6 {
            break s;
        }
        assert!(!s.contains("failed"), "{s}");
        assert!(Instant::now() < deadline, "the grid did not finish:\n{s}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let slurm_s = t.elapsed().as_secs_f64();
    assert!(status.contains(&format!("job {cell_job}_0")), "{status}");
    // The requeued task ran twice, appending to its log.
    let log = std::fs::read_to_string(out.join("logs/cell-0.log")).unwrap();
    assert_eq!(log.matches("device: cpu").count(), 2, "{log}");
    ok(&dia_with_env(
        &["experiment", "--config", c, "--out", o, "--collect"],
        &[],
    ));
    assert_eq!(results(&out), results(&local));
    eprintln!(
        "tiny grid: {local_s:.1} s locally (--jobs 1), {slurm_s:.1} s on Slurm (with a requeue)"
    );
}
