//! Property tests of the shifts, blurs and augmentation (issue #2 acceptance).

use dia_transforms::blur::{gaussian_blur_batch, median_blur_batch};
use dia_transforms::shift::{cutperm, rot90};
use dia_transforms::*;
use proptest::prelude::*;
use rand::SeedableRng;

/// A batch of 1..3 images with 1..4 channels and sizes up to 12, with distinct pixel values.
fn batch(even: bool) -> impl Strategy<Value = ImageBatch> {
    (1usize..3, 1usize..4, 1usize..7, 1usize..7, any::<u64>()).prop_map(move |(n, c, h, w, s)| {
        let (h, w) = if even { (2 * h, 2 * w) } else { (h + 1, w + 1) };
        let len = n * c * h * w;
        // Distinct values so "is a permutation" is meaningful.
        let data: Vec<f32> = (0..len)
            .map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(s) % 1_000_003) as f32)
            .collect();
        ImageBatch::new(data, (n, c, h, w)).unwrap()
    })
}

fn sorted(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    v.sort_by(f32::total_cmp);
    v
}

proptest! {
    #[test]
    fn rot90_four_times_is_identity(x in batch(false)) {
        let mut y = x.clone();
        for _ in 0..4 {
            y = rot90(&y, 1);
        }
        prop_assert_eq!(&y, &x);
        // rot90(k) is k single quarter turns.
        for k in 0..4 {
            let mut z = x.clone();
            for _ in 0..k {
                z = rot90(&z, 1);
            }
            prop_assert_eq!(rot90(&x, k), z);
        }
    }

    #[test]
    fn cutperm_is_an_involution_on_even_sizes(x in batch(true), k in 1usize..4) {
        prop_assert_eq!(cutperm(&cutperm(&x, k), k), x);
    }

    #[test]
    fn shifts_permute_the_pixels_of_each_image(x in batch(false), k in 0usize..4) {
        for y in [cutperm(&x, k), rot90(&x, k)] {
            for i in 0..x.len() {
                prop_assert_eq!(sorted(y.image(i)), sorted(x.image(i)));
            }
        }
    }

    #[test]
    fn blur_of_a_constant_is_constant_away_from_the_border(
        v in 0.0f32..1.0, h in 8usize..20, w in 8usize..20, half in 0usize..3,
    ) {
        let k = 2 * half + 1;
        let x = ImageBatch::new(vec![v; 2 * h * w], (1, 2, h, w)).unwrap();
        for y in [gaussian_blur_batch(&x, k).unwrap(), median_blur_batch(&x, k).unwrap()] {
            for ch in 0..2 {
                for i in half..h - half {
                    for j in half..w - half {
                        let got = y.data()[(ch * h + i) * w + j];
                        prop_assert!((got - v).abs() <= 1e-6, "{got} != {v} at ({i}, {j})");
                    }
                }
            }
        }
    }

    #[test]
    fn augmentation_stays_in_range_and_is_seeded(seed in any::<u64>()) {
        let data: Vec<f32> = (0..2 * 3 * 12 * 12).map(|i| (i % 17) as f32 / 16.0).collect();
        let x = ImageBatch::new(data, (2, 3, 12, 12)).unwrap().to_tensor(&candle_core::Device::Cpu).unwrap();
        let aug = SimclrAugmentation::train();
        let run = |s| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            aug.augment(&x, &mut rng).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let a = run(seed);
        prop_assert_eq!(&a, &run(seed));
        prop_assert!(a.iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v)));
    }

    #[test]
    fn crop_boxes_fit_the_image(seed in any::<u64>(), h in 4usize..64, w in 4usize..64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for crop in [RandomResizedCrop::default(), SimclrAugmentation::eval(0.54).crop] {
            for b in crop.sample(16, h, w, &mut rng) {
                prop_assert!(b.w >= 1 && b.w <= w as i64 && b.h >= 1 && b.h <= h as i64);
                prop_assert!(b.w_off.abs() <= w as i64 - b.w && b.h_off.abs() <= h as i64 - b.h);
            }
        }
    }
}

#[test]
fn shift_kind_names_round_trip() {
    for name in ShiftKind::NAMES {
        let k: ShiftKind = name.parse().unwrap();
        assert_eq!(k.to_string(), name);
    }
    let k: ShiftKind = "blurgaussian".parse().unwrap();
    assert_eq!(k.to_string(), "blurgaussian_rotation");
    for bad in [
        "",
        "diffusion",
        "rot",
        "_rotation",
        "blurmean_cutperm",
        "rotation_cutperm",
    ] {
        let err = bad.parse::<ShiftKind>().unwrap_err().to_string();
        assert!(err.contains("unknown shift_trans_type"), "{bad}: {err}");
    }
}

#[test]
fn shift_rejects_an_index_out_of_range() {
    let x = ImageBatch::zeros((1, 3, 4, 4));
    assert!(Shift::Rotation.apply_batch(&x, 4).is_err());
}

#[test]
fn blurs_reject_even_kernels() {
    let x = ImageBatch::zeros((1, 3, 4, 4));
    assert!(gaussian_blur_batch(&x, 4).is_err());
    assert!(median_blur_batch(&x, 0).is_err());
}

#[test]
fn gaussian_kernels_sum_to_one_and_follow_opencv_for_large_k() {
    for k in [1, 3, 5, 7, 9, 11] {
        let g = gaussian_kernel_1d(k).unwrap();
        assert!((g.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    // k = 9: sigma = 0.3 * (4 - 1) + 0.8 = 1.7.
    let g = gaussian_kernel_1d(9).unwrap();
    let raw: Vec<f64> = (0..9)
        .map(|i| (-((i as f64 - 4.0).powi(2)) / (2.0 * 1.7 * 1.7)).exp())
        .collect();
    let s: f64 = raw.iter().sum();
    for (a, b) in g.iter().zip(&raw) {
        assert!((*a as f64 - b / s).abs() < 1e-7);
    }
    // Golden values of spec §3: centre and corner of the 7x7 kernel.
    let g7 = gaussian_kernel_1d(7).unwrap();
    assert_eq!(g7[3] * g7[3], 81.0 / 1024.0); // 0.0791015625
    assert_eq!(g7[0] * g7[0], 1.0 / 1024.0); // 0.0009765625
}

#[test]
fn blur_dissolvers_keep_shape() {
    let x = ImageBatch::new(
        (0..3 * 40 * 40).map(|i| (i % 7) as f32 / 7.0).collect(),
        (1, 3, 40, 40),
    )
    .unwrap();
    for d in [
        BlurDissolver::gaussian(7),
        BlurDissolver::median(7),
        BlurDissolver::none(Some(32)),
    ] {
        assert_eq!(d.dissolve_batch(&x).unwrap().dims(), (1, 3, 40, 40));
    }
    assert_eq!(BlurDissolver::none(None).dissolve_batch(&x).unwrap(), x);
}
