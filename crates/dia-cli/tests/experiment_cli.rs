//! `dia quickstart` (at a tiny, hidden scale) and `dia experiment`: the report, the plots, the
//! results table, and resumption (a finished cell is not re-run).

mod common;

use common::{dia, ok, root};

#[test]
fn quickstart_writes_the_report_with_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("qs");
    let stdout = ok(&dia(&[
        "quickstart",
        "--tiny",
        "--gaussian",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(stdout.contains("report:"), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The AUROC table: mean ± std over the (two, at the tiny scale) seeds.
    for m in ["| csi |", "| dia-diffusion |", "| dia-gaussian |"] {
        let row = report
            .lines()
            .find(|l| l.starts_with(m))
            .unwrap_or_else(|| panic!("{m} missing:\n{report}"));
        let cell = row.split('|').nth(2).unwrap();
        let auroc: f64 = cell.split('±').next().unwrap().trim().parse().unwrap();
        assert!((0.0..=1.0).contains(&auroc), "{row}");
    }
    // DIA − CSI paired over the seeds, with its interval; the DDPM's curve and strength.
    let paired = report
        .lines()
        .find(|l| l.starts_with("| dia-diffusion |") && l.contains("(n = 2)"))
        .unwrap_or_else(|| panic!("no paired row:\n{report}"));
    assert!(paired.contains('['), "{paired}");
    // ... and the verdict in words, which names the method and counts the seeds it won.
    assert!(
        report.contains("**dia-diffusion**") && report.contains("of 2 seeds"),
        "{report}"
    );
    assert!(
        report.contains("| 30 |") && report.contains("| 99 |"),
        "{report}"
    );
    for png in [
        "roc.png",
        "dissolve.png",
        "ddpm/shirt/loss.png",
        "auroc.png",
    ] {
        assert!(image::open(out.join(png)).unwrap().width() > 100, "{png}");
    }
    // A second run reuses every finished cell (and the DDPM) instead of training again.
    let t = std::time::Instant::now();
    ok(&dia(&[
        "quickstart",
        "--tiny",
        "--gaussian",
        "--out",
        out.to_str().unwrap(),
    ]));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(t.elapsed().as_secs() < 60);
}

#[test]
fn experiment_runs_a_grid_and_tabulates_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("grid-experiment.yaml");
    std::fs::write(
        &cfg,
        format!(
            "train:\n  data: {{format: idx, dir: {}}}\n  image_size: 32\n  mode: csi\n  shift_trans_type: rotation\n  encoder: {{arch: resnet18, width: 4}}\n  epochs: 1\n  batch_size: 16\n  max_iterations_per_epoch: 2\nmethods: [csi, dia-median]\nnormal_classes: [Trouser, Bag]\nseeds: [0, 1]\neval: {{ood_samples: 1}}\n",
            root().join("datasets/fashion-mnist-sample").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("grid");
    let check = ok(&dia(&[
        "experiment",
        "--config",
        cfg.to_str().unwrap(),
        "--check",
    ]));
    assert!(check.contains("8 cells"), "{check}");
    let table = ok(&dia(&[
        "experiment",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    assert!(table.contains("| csi |") && table.contains("±"), "{table}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(out
        .join("dia-median/trouser/seed-1/eval/report.json")
        .is_file());
    // A method without its section is refused up front.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("dia-median", "dia-diffusion");
    std::fs::write(&bad, text).unwrap();
    let r = dia(&["experiment", "--config", bad.to_str().unwrap(), "--check"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("ddpm"));
}

#[test]
fn grid_tasks_run_one_at_a_time_and_report_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tasks-experiment.yaml");
    std::fs::write(
        &cfg,
        format!(
            "train:\n  data: {{format: idx, dir: {}}}\n  image_size: 32\n  mode: csi\n  shift_trans_type: rotation\n  encoder: {{arch: resnet18, width: 4}}\n  epochs: 1\n  batch_size: 16\n  max_iterations_per_epoch: 1\nddpm:\n  unet: {{dim: 8, dim_mults: [1, 2]}}\n  batch_size: 4\n  steps: 1\n  num_samples: 0\nmethods: [csi, dia-diffusion]\nnormal_classes: [Trouser]\nseeds: [0]\neval: {{ood_samples: 1}}\n",
            root().join("datasets/fashion-mnist-sample").display()
        ),
    )
    .unwrap();
    let (c, out) = (cfg.to_str().unwrap(), dir.path().join("grid"));
    let o = out.to_str().unwrap();
    let status = ok(&dia(&["experiment", "--config", c, "--out", o, "--status"]));
    assert_eq!(status.matches("not started").count(), 3, "{status}");
    // Out of range, and a diffusion cell before its DDPM: errors that say what to do.
    let e = dia(&["experiment", "--config", c, "--out", o, "--cell", "9"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("the grid has 2"));
    let e = dia(&["experiment", "--config", c, "--out", o, "--cell", "1"]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("run DDPM task 0 first"),
        "{msg}"
    );
    let e = dia(&["experiment", "--config", c, "--out", o, "--collect"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("cells not done yet: 0"));
    ok(&dia(&[
        "experiment",
        "--config",
        c,
        "--out",
        o,
        "--ddpm",
        "0",
    ]));
    ok(&dia(&[
        "experiment",
        "--config",
        c,
        "--out",
        o,
        "--cell",
        "1",
    ]));
    let status = ok(&dia(&["experiment", "--config", c, "--out", o, "--status"]));
    assert_eq!(status.matches(" done ").count(), 2, "{status}");
    ok(&dia(&[
        "experiment",
        "--config",
        c,
        "--out",
        o,
        "--cell",
        "0",
    ]));
    let table = ok(&dia(&[
        "experiment",
        "--config",
        c,
        "--out",
        o,
        "--collect",
    ]));
    assert!(
        table.contains("csi") && table.contains("dia-diffusion"),
        "{table}"
    );
    // The Slurm scripts, without submitting.
    let dry = ok(&dia(&[
        "experiment",
        "--config",
        c,
        "--out",
        o,
        "--slurm",
        "--dry-run",
        "--partition",
        "gpu",
        "--gpus-per-cell",
        "1",
        "--sbatch-arg=--account=lab",
    ]));
    for want in [
        "--array=0-0",
        "--array=0-1",
        "--partition=gpu",
        "--gres=gpu:1",
        "--account=lab",
        "--dependency=afterok:{ddpm}",
        "--cell \"$SLURM_ARRAY_TASK_ID\"",
    ] {
        assert!(dry.contains(want), "{want} not in:\n{dry}");
    }
}
