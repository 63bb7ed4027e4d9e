//! Test-time-augmented features do not depend on the batch size (each copy of each image is
//! seeded by (copy, image)), so neither do the scores; and they do depend on the seed.

use candle_core::{Device, Tensor};
use dia_data::TensorDataset;
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
use dia_eval::{extract_features, CsiStatistics, ScoreKind, TtaConfig};
use dia_transforms::Shift;
use rand::SeedableRng;

fn model() -> ResNet18 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let cfg = EncoderConfig {
        width: 4,
        ..EncoderConfig::new(Arch::ResNet18)
    };
    ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu).unwrap()
}

fn images(n: usize, seed: u64) -> TensorDataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = dia_nn::init::uniform((n, 3, 28, 28), 0.5, &mut rng, &Device::Cpu)
        .and_then(|t| t + 0.5)
        .unwrap();
    TensorDataset::new(&x, (0..n).map(|i| format!("img{i}")).collect()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn scores_with_batch_size_1_and_64_are_identical() {
    let m = model();
    let (train, test) = (images(12, 2), images(9, 3));
    let tta = |batch_size| TtaConfig {
        ood_samples: 3,
        batch_size,
        ..TtaConfig::default()
    };
    let feats = |ds: &TensorDataset, n: usize, b: usize, shift: Shift| {
        let idx: Vec<usize> = (0..n).collect();
        extract_features(&m, ds, &idx, shift, 4, &tta(b), &mut |_, _| {}).unwrap()
    };
    for shift in [Shift::Rotation, Shift::CutPerm] {
        let stats = CsiStatistics::fit(&feats(&train, 12, 64, shift), ScoreKind::Csi).unwrap();
        let (one, many) = (feats(&test, 9, 1, shift), feats(&test, 9, 64, shift));
        for (a, b) in one.iter().zip(&many) {
            assert_eq!(values(&a.simclr), values(&b.simclr));
            assert_eq!(values(&a.shift), values(&b.shift));
        }
        assert_eq!(stats.score(&one).unwrap(), stats.score(&many).unwrap());
    }
    // A different seed changes the augmentations, hence the features.
    let idx: Vec<usize> = (0..9).collect();
    let other = TtaConfig { seed: 7, ..tta(64) };
    let f7 = extract_features(&m, &test, &idx, Shift::Rotation, 4, &other, &mut |_, _| {}).unwrap();
    assert_ne!(
        values(&f7[0].simclr),
        values(&feats(&test, 9, 64, Shift::Rotation)[0].simclr)
    );
}
