//! Golden tests against PyTorch: the fixture is written by `scripts/fixtures/transforms.py`.
//! Every transform must agree with PyTorch to a max abs difference of 1e-5.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use dia_transforms::color::{adjust_contrast, adjust_hsv, grayscale, jitter};
use dia_transforms::*;

const TOL: f32 = 1e-5;

fn fixtures() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/transforms.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("fixture loads")
}

/// A uint8 fixture as f32 in [0, 1], computed as `u8 / 255` like the script.
fn image(f: &HashMap<String, Tensor>, name: &str) -> Tensor {
    let t = &f[name];
    let v: Vec<f32> = t
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
}

fn assert_close(name: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.dims(), expected.dims(), "{name}: shape");
    let a = actual.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let e = expected.flatten_all().unwrap();
    let diff = (a - e)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff <= TOL, "{name}: max abs difference {diff} > {TOL}");
}

#[test]
fn bilinear_resize_matches_interpolate() {
    let f = fixtures();
    let cases = [
        ("img224", (32, 32), "resize_224_to_32"),
        ("img28", (32, 32), "resize_28_to_32"),
        ("img32", (45, 23), "resize_32_to_45x23"),
    ];
    for (input, size, expected) in cases {
        let y = resize_bilinear(&image(&f, input), size).unwrap();
        assert_close(expected, &y, &f[expected]);
    }
    let up = image(&f, "img32").narrow(0, 0, 1).unwrap();
    let y = resize_bilinear(&up, (224, 224)).unwrap();
    assert_close("resize_32_to_224", &y, &f["resize_32_to_224"]);
}

#[test]
fn nearest_resize_and_pad_match() {
    let f = fixtures();
    let y = resize_nearest(&image(&f, "img224"), (32, 32)).unwrap();
    assert_close("nearest_224_to_32", &y, &f["nearest_224_to_32"]);
    let one = image(&f, "img32").narrow(0, 0, 1).unwrap();
    for (size, name) in [(100, "nearest_32_to_100"), (64, "nearest_32_to_64")] {
        let y = resize_nearest(&one, (size, size)).unwrap();
        assert_close(name, &y, &f[name]);
    }
    let x28 = image(&f, "img28");
    let padded = pad_zeros(&x28, 2).unwrap();
    assert_close("pad2_28", &padded, &f["pad2_28"]);
    // MedMNIST round trip of the dissolver: Pad(2) then CenterCrop(28) is the identity.
    assert_close("crop(pad)", &center_crop(&padded, (28, 28)).unwrap(), &x28);
}

#[test]
fn blurs_match() {
    let f = fixtures();
    let x = image(&f, "img32");
    assert_close("gauss7_32", &gaussian_blur(&x, 7).unwrap(), &f["gauss7_32"]);
    assert_close("gauss5_32", &gaussian_blur(&x, 5).unwrap(), &f["gauss5_32"]);
    assert_close("median7_32", &median_blur(&x, 7).unwrap(), &f["median7_32"]);
    assert_close("median3_32", &median_blur(&x, 3).unwrap(), &f["median3_32"]);
}

#[test]
fn shifts_match() {
    let f = fixtures();
    for name in ["odd", "even"] {
        let x = image(&f, &format!("shift_{name}"));
        for k in 1..4 {
            let rot = format!("rot{k}_{name}");
            assert_close(&rot, &Shift::Rotation.apply(&x, k).unwrap(), &f[&rot]);
            let cut = format!("cutperm{k}_{name}");
            assert_close(&cut, &Shift::CutPerm.apply(&x, k).unwrap(), &f[&cut]);
        }
    }
}

/// Runs a per-image colour operation over the colour fixture.
fn per_image(f: &HashMap<String, Tensor>, op: impl Fn(usize, &mut [f32], usize) + Sync) -> Tensor {
    let mut b = ImageBatch::from_tensor(&image(f, "color_in")).unwrap();
    let (_, _, h, w) = b.dims();
    b.for_each_image_mut(|i, img| op(i, img, h * w));
    b.to_tensor(&Device::Cpu).unwrap()
}

fn factors(f: &HashMap<String, Tensor>) -> Vec<JitterFactors> {
    f["jitter_factors"]
        .to_vec2::<f32>()
        .unwrap()
        .iter()
        .map(|r| JitterFactors {
            contrast: r[0],
            hue: r[1],
            saturation: r[2],
            value: r[3],
        })
        .collect()
}

#[test]
fn colour_ops_match() {
    let f = fixtures();
    let fs = factors(&f);
    let gray = per_image(&f, |_, img, hw| grayscale(img, hw));
    assert_close("gray", &gray, &f["gray"]);
    let contrast = per_image(&f, |i, img, hw| adjust_contrast(img, hw, fs[i].contrast));
    assert_close("contrast", &contrast, &f["contrast"]);
    let hsv = per_image(&f, |i, img, hw| adjust_hsv(img, hw, &fs[i]));
    assert_close("hsv", &hsv, &f["hsv"]);
    for (first, name) in [(true, "jitter_contrast_first"), (false, "jitter_hsv_first")] {
        let y = per_image(&f, |i, img, hw| jitter(img, hw, &fs[i], first));
        assert_close(name, &y, &f[name]);
    }
}

#[test]
fn resized_crop_matches_grid_sample() {
    let f = fixtures();
    let boxes: Vec<CropBox> = f["crop_boxes"]
        .to_vec2::<i64>()
        .unwrap()
        .iter()
        .map(|r| CropBox {
            w: r[0],
            h: r[1],
            w_off: r[2],
            h_off: r[3],
        })
        .collect();
    let y = resized_crop(&image(&f, "crop_in"), &boxes).unwrap();
    assert_close("crop", &y, &f["crop"]);
}

#[test]
fn simclr_apply_with_fixed_params_matches_the_composed_ops() {
    // jitter -> grey -> crop with fixed parameters equals the fixture chain for sample 0.
    let f = fixtures();
    let fs = factors(&f);
    let x = image(&f, "color_in").narrow(0, 0, 1).unwrap();
    let params = AugmentParams {
        contrast_first: true,
        samples: vec![SampleAugment {
            jitter: Some(fs[0]),
            gray: false,
            crop: CropBox::full(32, 32),
        }],
    };
    let y = SimclrAugmentation::train().apply(&x, &params).unwrap();
    let expected = f["jitter_contrast_first"].narrow(0, 0, 1).unwrap();
    assert_close("simclr(jitter, full crop)", &y, &expected);
}
