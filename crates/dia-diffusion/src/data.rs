//! The DDPM's training images, decoded as the reference decodes them (spec §2.2):
//! `[ToTensor(), RandomHorizontalFlip(), Resize((32, 32))]` resizes the *tensor* of the
//! full-resolution file, so torchvision 0.12 resizes bilinearly **without antialiasing**;
//! MedMNIST pads 28 → 32 instead (`Pad(2)`, the config's `pad`). The encoder's loader, by
//! contrast, resizes with PIL's antialiased filter (spec §13.7), which is why the DDPM does not
//! reuse it. (The flip commutes with this resize, whose taps are symmetric, so it is applied
//! after it.)

use candle_core::{Device, Tensor};
use dia_data::Dataset;
use dia_transforms::batch::ImageBatch;
use dia_transforms::resize::resize_bilinear_batch;
use rayon::prelude::*;

use crate::error::Result;

/// Decodes `indices` of `data` from their files and brings each to `size`×`size`: bilinear
/// without antialias when `pad` is 0, zero padding by `pad` on every side otherwise. The
/// batch (N, 3, size, size) is on the host.
///
/// ```
/// use dia_data::TensorDataset;
/// use dia_diffusion::data::load_ddpm_batch;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let images = candle_core::Tensor::ones((2, 3, 28, 28), candle_core::DType::F32,
///     &candle_core::Device::Cpu)?;
/// let data = TensorDataset::new(&images, vec!["a".into(), "b".into()])?;
/// assert_eq!(load_ddpm_batch(&data, &[0, 1], 32, 0)?.dims(), [2, 3, 32, 32]);
/// assert_eq!(load_ddpm_batch(&data, &[1], 32, 2)?.dims(), [1, 3, 32, 32]);
/// # Ok(()) }
/// ```
pub fn load_ddpm_batch(
    data: &dyn Dataset,
    indices: &[usize],
    size: usize,
    pad: usize,
) -> Result<Tensor> {
    let images: Vec<Vec<f32>> = indices
        .par_iter()
        .map(|&i| -> Result<Vec<f32>> {
            let (v, (h, w)) = data.load_native(i)?;
            let one = ImageBatch::new(v, (1, 3, h, w))?;
            if pad > 0 {
                if (h + 2 * pad, w + 2 * pad) != (size, size) {
                    return Err(crate::Error::Config(format!(
                        "{}: a {h}x{w} image padded by {pad} on every side is not {size}x{size}",
                        data.source(i)
                    )));
                }
                let t = one.into_tensor(&Device::Cpu)?;
                let padded = dia_transforms::pad_zeros(&t, pad)?;
                return Ok(padded.flatten_all()?.to_vec1()?);
            }
            Ok(resize_bilinear_batch(&one, (size, size))?.into_vec())
        })
        .collect::<Result<_>>()?;
    let flat: Vec<f32> = images.concat();
    Ok(Tensor::from_vec(
        flat,
        (indices.len(), 3, size, size),
        &Device::Cpu,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dia_data::TensorDataset;

    /// Against a direct transcription of PyTorch's bilinear `align_corners=False` sampling,
    /// on a 64 → 32 downscale, where antialiasing would average 2×2 blocks instead.
    #[test]
    fn downscale_is_plain_bilinear_not_antialiased() -> Result<()> {
        let v: Vec<f32> = (0..3 * 64 * 64)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let x = Tensor::from_vec(v.clone(), (1, 3, 64, 64), &Device::Cpu)?;
        let data = TensorDataset::new(&x, vec!["a".into()])?;
        let y: Vec<f32> = load_ddpm_batch(&data, &[0], 32, 0)?
            .flatten_all()?
            .to_vec1()?;
        // Scale 2: src = 2·dst + 0.5, so each output is the mean of a 2×2 block... of the
        // *neighbouring* pixels at weights ½ — exactly the 2×2 mean starting at 2·dst.
        for c in 0..3 {
            for i in 0..32 {
                for j in 0..32 {
                    let p = |a: usize, b: usize| v[c * 4096 + a * 64 + b];
                    let want = 0.25
                        * (p(2 * i, 2 * j)
                            + p(2 * i, 2 * j + 1)
                            + p(2 * i + 1, 2 * j)
                            + p(2 * i + 1, 2 * j + 1));
                    let got = y[c * 1024 + i * 32 + j];
                    assert!((got - want).abs() < 1e-5, "{c} {i} {j}: {got} vs {want}");
                }
            }
        }
        // At 64 → 16 the two differ: bilinear reads 2 of every 4 rows, antialiasing all 4.
        let z: Vec<f32> = load_ddpm_batch(&data, &[0], 16, 0)?
            .flatten_all()?
            .to_vec1()?;
        let p = |a: usize, b: usize| v[a * 64 + b];
        let want = 0.25 * (p(1, 1) + p(1, 2) + p(2, 1) + p(2, 2));
        assert!((z[0] - want).abs() < 1e-5, "{} vs {want}", z[0]);
        Ok(())
    }

    #[test]
    fn padding_needs_the_exact_size() -> Result<()> {
        let x = Tensor::ones((1, 3, 28, 28), candle_core::DType::F32, &Device::Cpu)?;
        let data = TensorDataset::new(&x, vec!["a".into()])?;
        let y = load_ddpm_batch(&data, &[0], 32, 2)?;
        assert_eq!(y.sum_all()?.to_scalar::<f32>()?, (3 * 28 * 28) as f32);
        let e = load_ddpm_batch(&data, &[0], 34, 2).unwrap_err().to_string();
        assert!(e.contains("padded by 2"), "{e}");
        Ok(())
    }
}
