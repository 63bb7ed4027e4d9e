//! Golden tests (fixture by `scripts/fixtures/eval.py`): metrics equal scikit-learn's on fixed
//! score vectors with ties, and the CSI score equals the spec §6 formula computed in numpy.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use dia_eval::*;

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

#[test]
fn metrics_equal_scikit_learn() {
    let f = fixture();
    for case in ["continuous", "ties", "heavy_ties", "imbalanced", "tiny"] {
        let scores: Vec<f64> = f[&format!("metrics.{case}.scores")].to_vec1().unwrap();
        let labels: Vec<bool> = f[&format!("metrics.{case}.labels")]
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&l| l == 1)
            .collect();
        let want: Vec<f64> = f[&format!("metrics.{case}.expected")].to_vec1().unwrap();
        let got = [
            auroc(&scores, &labels).unwrap(),
            average_precision(&scores, &labels).unwrap(),
            fpr_at_tpr(&scores, &labels, 0.95).unwrap(),
        ];
        for (name, (g, w)) in ["auroc", "aupr", "fpr95"].iter().zip(got.iter().zip(&want)) {
            assert!(
                (g - w).abs() < 1e-12,
                "{case} {name}: {g} vs scikit-learn {w}"
            );
        }
    }
}

fn per_shift(f: &HashMap<String, Tensor>, split: &str) -> Vec<ShiftFeatures> {
    let sim = &f[&format!("csi.{split}_simclr")];
    let shi = &f[&format!("csi.{split}_shift")];
    (0..sim.dim(0).unwrap())
        .map(|k| ShiftFeatures {
            simclr: sim.get(k).unwrap(),
            shift: shi.get(k).unwrap(),
        })
        .collect()
}

#[test]
fn csi_score_equals_the_reference_formula() {
    let f = fixture();
    let (train, test) = (per_shift(&f, "train"), per_shift(&f, "test"));
    for (kind, key) in [
        (ScoreKind::Csi, "csi.expected_csi"),
        (ScoreKind::Simclr, "csi.expected_simclr"),
    ] {
        let stats = CsiStatistics::fit(&train, kind).unwrap();
        let got = stats.score(&test).unwrap();
        let want: Vec<f64> = f[key].to_vec1().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{kind:?} sample {i}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn scores_do_not_depend_on_how_the_test_set_is_batched() {
    let f = fixture();
    let (train, test) = (per_shift(&f, "train"), per_shift(&f, "test"));
    let stats = CsiStatistics::fit(&train, ScoreKind::Csi).unwrap();
    let all = stats.score(&test).unwrap();
    assert_eq!(all.len(), test[0].simclr.dim(0).unwrap());
    for (i, &expected) in all.iter().enumerate() {
        let one: Vec<ShiftFeatures> = test
            .iter()
            .map(|t| ShiftFeatures {
                simclr: t.simclr.narrow(0, i, 1).unwrap(),
                shift: t.shift.narrow(0, i, 1).unwrap(),
            })
            .collect();
        assert_eq!(stats.score(&one).unwrap()[0], expected, "sample {i}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(auroc(&[0.1, 0.2], &[true, true])
        .unwrap_err()
        .to_string()
        .contains("both classes"));
    assert!(auroc(&[0.1], &[true, false]).is_err());
    assert!(auroc(&[f64::NAN, 0.2], &[true, false]).is_err());
    assert!(fpr_at_tpr(&[0.1, 0.2], &[true, false], 1.5).is_err());
    let f = fixture();
    let train = per_shift(&f, "train");
    let stats = CsiStatistics::fit(&train, ScoreKind::Csi).unwrap();
    assert!(stats.score(&train[..2]).is_err());
    assert!("euclid".parse::<ScoreKind>().is_err());
    assert_eq!("CSI".parse::<ScoreKind>().unwrap(), ScoreKind::Csi);
}

#[test]
fn bootstrap_interval_is_seeded_and_brackets_the_estimate() {
    let scores: Vec<f64> = (0..200)
        .map(|i| ((i * 37) % 101) as f64 / 100.0 + if i % 2 == 0 { 0.3 } else { 0.0 })
        .collect();
    let normal: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
    let a = bootstrap_auroc(&scores, &normal, 500, 0.95, 7).unwrap();
    assert_eq!(a, bootstrap_auroc(&scores, &normal, 500, 0.95, 7).unwrap());
    assert_ne!(a, bootstrap_auroc(&scores, &normal, 500, 0.95, 8).unwrap());
    let point = auroc(&scores, &normal).unwrap();
    assert!(a.0 < point && point < a.1, "{a:?} vs {point}");
    assert!(a.1 - a.0 < 0.2);
}
