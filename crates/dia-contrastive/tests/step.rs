//! Batch construction (spec §5.2) and training steps on real images.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use candle_core::{Device, Tensor};
use dia_contrastive::*;
use dia_data::load_batch;
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
use dia_transforms::{
    BlurDissolver, ColorJitter, Dissolve, RandomResizedCrop, Shift, SimclrAugmentation,
};
use rand::{RngCore, SeedableRng};

/// A dissolver that counts its calls and adds 10 (so dissolved images are recognisable).
struct Counting(Arc<AtomicUsize>);

impl Dissolve for Counting {
    fn dissolve(&self, x: &Tensor, _rng: &mut dyn RngCore) -> dia_transforms::Result<Tensor> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok((x + 10.0)?)
    }
    fn name(&self) -> String {
        "counting".into()
    }
}

/// An augmentation that changes nothing: no jitter, no grey, the full-image crop.
fn identity_aug() -> SimclrAugmentation {
    SimclrAugmentation {
        jitter: ColorJitter {
            p: 0.0,
            ..ColorJitter::default()
        },
        gray_p: 0.0,
        crop: RandomResizedCrop {
            scale: (1.0, 1.0),
            ratio: (1.0, 1.0),
        },
    }
}

fn sample_images(n: usize) -> Tensor {
    let ds = common::sample_train();
    let idx: Vec<usize> = (0..ds.len())
        .filter(|&i| ds.label(i) == 0)
        .take(n)
        .collect();
    load_batch(ds.as_ref(), idx).unwrap().images
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn csi_and_dia_batches_have_the_reference_layout() {
    let x = sample_images(3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = Counting(calls.clone());
    let csi = BatchBuilder {
        shift: Shift::Rotation,
        k_shift: 4,
        dissolver: None,
        blur_all_views: false,
        augmentation: identity_aug(),
    };
    let b = csi.build(&x, &mut rng).unwrap();
    assert_eq!((b.images.dims(), b.groups), (&[24, 3, 32, 32][..], 2));
    assert_eq!(b.shift_labels[..12], [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    assert_eq!(b.shift_labels[12..], b.shift_labels[..12]);
    // Group 1, shift k, image i is rot_k of x_i or of its mirror image.
    for k in 0..4 {
        for i in 0..3 {
            let got = b.images.get(k * 3 + i).unwrap().unsqueeze(0).unwrap();
            let xi = x.get(i).unwrap().unsqueeze(0).unwrap();
            let plain = Shift::Rotation.apply(&xi, k).unwrap();
            let flipped = Shift::Rotation
                .apply(&dia_transforms::hflip(&xi, &[true]).unwrap(), k)
                .unwrap();
            let d = max_abs(&(&got - &plain).unwrap()).min(max_abs(&(&got - &flipped).unwrap()));
            assert!(d < 1e-5, "k {k} image {i}: {d}");
        }
    }

    let dia = BatchBuilder {
        dissolver: Some(&counting),
        ..csi
    };
    let b = dia.build(&x, &mut rng).unwrap();
    assert_eq!(
        (b.images.dims()[0], b.groups, b.shift_labels.len()),
        (36, 3, 36)
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        4,
        "one dissolver call (one timestep) per shift"
    );
    // Only the third group is dissolved (+10).
    assert!(max_abs(&b.images.narrow(0, 0, 24).unwrap()) <= 1.0);
    assert!(
        b.images
            .narrow(0, 24, 12)
            .unwrap()
            .min_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            >= 10.0
    );

    let all = BatchBuilder {
        blur_all_views: true,
        ..dia
    };
    let b = all.build(&x, &mut rng).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 4 + 6);
    assert!(
        b.images.min_all().unwrap().to_scalar::<f32>().unwrap() >= 10.0,
        "the reference's blur bug: every group"
    );
}

#[test]
fn a_few_lars_steps_lower_the_loss_in_both_modes() {
    let x = sample_images(8);
    let blur = BlurDissolver::gaussian(7);
    for dissolver in [None, Some(&blur as &dyn Dissolve)] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let cfg = EncoderConfig {
            width: 4,
            ..EncoderConfig::new(Arch::ResNet18)
        };
        let model = ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu).unwrap();
        let builder = BatchBuilder {
            shift: Shift::Rotation,
            k_shift: 4,
            dissolver,
            blur_all_views: false,
            augmentation: SimclrAugmentation::train(),
        };
        // A fixed batch, so the loss only changes through the parameters.
        let batch = builder.build(&x, &mut rng).unwrap();
        let mut lars = Lars::new(LarsConfig::default());
        let first = train_step(&model, &batch, NegMode::ShiftedRemoved, &mut lars, 1.0).unwrap();
        let mut last = first;
        for _ in 0..15 {
            last = train_step(&model, &batch, NegMode::ShiftedRemoved, &mut lars, 1.0).unwrap();
        }
        assert!(
            first.total().is_finite() && last.total() < first.total() - 0.01,
            "{dissolver:?}: {first:?} -> {last:?}",
            dissolver = dissolver.map(|d| d.name())
        );
    }
}
