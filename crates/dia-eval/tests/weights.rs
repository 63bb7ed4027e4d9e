//! The CSI shift weights (issue #19, spec §6): the reference's `w_shi = 1/mean logit` flips
//! sign when the mean right-shift logit of the training normals is negative, inverting the
//! score; the weights are reported with a warning, and `csi_robust` does not invert.

use candle_core::{Device, Tensor};
use dia_eval::{auroc, CsiStatistics, ScoreKind, ShiftFeatures};
use rand::{Rng, SeedableRng};

/// K = 2 shifts. Every image has the same SimCLR feature (so only the shift term ranks), and
/// its right-shift logits: normals around `normal`, anomalies lower by 1 (the shift head is
/// less sure of them, as intended).
fn features(n: usize, normal: f32, anomalous: bool, rng: &mut impl Rng) -> Vec<ShiftFeatures> {
    (0..2)
        .map(|k| {
            let simclr = Tensor::ones((n, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
            let logits: Vec<f32> = (0..n * 2)
                .map(|i| {
                    let right = i % 2 == k;
                    let base = if anomalous { normal - 1.0 } else { normal };
                    if right {
                        base + rng.random_range(-0.2..0.2)
                    } else {
                        -3.0
                    }
                })
                .collect();
            ShiftFeatures {
                simclr,
                shift: Tensor::from_vec(logits, (n, 2), &Device::Cpu).unwrap(),
            }
        })
        .collect()
}

fn pooled_auroc(kind: ScoreKind, mean_logit: f32) -> (f64, CsiStatistics) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let train = features(50, mean_logit, false, &mut rng);
    let stats = CsiStatistics::fit(&train, kind).unwrap();
    let normal = stats
        .score(&features(40, mean_logit, false, &mut rng))
        .unwrap();
    let anomalous = stats
        .score(&features(40, mean_logit, true, &mut rng))
        .unwrap();
    let scores: Vec<f64> = normal.iter().chain(&anomalous).copied().collect();
    let is_normal: Vec<bool> = (0..80).map(|i| i < 40).collect();
    (auroc(&scores, &is_normal).unwrap(), stats)
}

#[test]
fn a_negative_mean_logit_inverts_the_reference_score_with_a_warning_but_not_the_robust_one() {
    // A healthy head (mean right-shift logit 2): both rank normals above anomalies.
    let (a, stats) = pooled_auroc(ScoreKind::Csi, 2.0);
    assert!(a > 0.95, "healthy CSI AUROC {a}");
    assert!(stats.weight_warnings().is_empty());
    // Mean logit −0.5: the reference's w_shi is −2, the score inverts, and it says so.
    let (a, stats) = pooled_auroc(ScoreKind::Csi, -0.5);
    assert!(
        a < 0.05,
        "the reference formula should invert here, AUROC {a}"
    );
    assert!(
        stats.w_shi().iter().all(|&w| w < 0.0),
        "{:?}",
        stats.w_shi()
    );
    assert!((stats.mean_logit()[0] + 0.5).abs() < 0.1);
    let w = stats.weight_warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("negative") && w[0].contains("csi_robust"),
        "{w:?}"
    );
    // The robust variant keeps the right order.
    let (a, stats) = pooled_auroc(ScoreKind::CsiRobust, -0.5);
    assert!(a > 0.95, "robust AUROC {a}");
    assert!(stats.w_shi().iter().all(|&w| w > 0.0));
    assert!(stats.weight_warnings().is_empty());
    assert_eq!(
        "csi_robust".parse::<ScoreKind>().unwrap(),
        ScoreKind::CsiRobust
    );
}

#[test]
fn a_weight_far_above_the_others_is_flagged() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut train = features(20, 2.0, false, &mut rng);
    // Shift 1's right-shift logits average about 0.01: w_shi[1] ≈ 100 against 0.5.
    let logits: Vec<f32> = (0..40)
        .map(|i| if i % 2 == 1 { 0.01 } else { -3.0 })
        .collect();
    train[1].shift = Tensor::from_vec(logits, (20, 2), &Device::Cpu).unwrap();
    let stats = CsiStatistics::fit(&train, ScoreKind::Csi).unwrap();
    let w = stats.weight_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("w_shi[1]") && w[0].contains("ten times"),
        "{w:?}"
    );
}
