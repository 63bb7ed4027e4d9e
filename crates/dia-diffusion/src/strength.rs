//! The dissolving strength of a DDPM (issue #16): how much DIA's one-step x̂₀ (spec §2.3)
//! changes a clean image, on a fixed set of training images, at a few timesteps.
//!
//! For images x in [0, 1] and the dissolved D_t(x) = [`DiffusionDissolver::dissolve_at`]:
//!
//! ```text
//! mean |D_t(x) − x|                        (over every pixel and channel)
//! PSNR_t = 10·log10(1 / mean (D_t(x) − x)²)  dB, peak 1
//! detail removed_t = 1 − ‖H(D_t(x))‖ / ‖H(x)‖,   H(y) = y − G₃(y)
//! ```
//!
//! where G₃ is the 3×3 Gaussian blur of [`dia_transforms::gaussian_blur`], so H keeps the
//! finest detail. The first two say how much the image changes, which even an untrained UNet
//! does (x̂₀ subtracts √(1/ᾱ_t − 1)·ε̂, and an untrained ε̂ is not small); only the third says
//! whether the change *removes detail*, which is what dissolving means: it is near zero or
//! negative for a UNet that adds unstructured change, and grows as the DDPM learns its data.
//! The numbers are measured in the dissolver's own input convention (by default the
//! reference's unnormalised [0, 1] input), since that is what DIA trains with.

use candle_core::{DType, Tensor};

use crate::dissolver::DiffusionDissolver;
use crate::error::Result;

/// The timesteps reported by `dia train-ddpm`: the two ends and the middle of DIA's training
/// range t ∈ {30, …, 99} (spec §2.3).
pub const STRENGTH_TIMESTEPS: [usize; 3] = [30, 50, 99];

/// The images every strength measurement of a run uses: the first ones of the normal class.
pub const STRENGTH_IMAGES: usize = 16;

/// The dissolving strength at one timestep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strength {
    /// The timestep.
    pub t: usize,
    /// mean |D_t(x) − x|.
    pub mean_abs_change: f64,
    /// PSNR of D_t(x) against x, dB (peak 1; infinite when nothing changed).
    pub psnr_db: f64,
    /// 1 − ‖H(D_t(x))‖ / ‖H(x)‖: the fraction of the finest detail removed (negative when
    /// detail is added).
    pub detail_removed: f64,
}

/// ‖x − G₃(x)‖ over the whole batch.
fn detail_norm(x: &Tensor) -> Result<f64> {
    let blurred = dia_transforms::gaussian_blur(x, 3)?;
    let h = (x - blurred)?.to_dtype(DType::F64)?;
    Ok(h.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt())
}

/// The strength of `dissolver` on the images `x` (N, C, H, W) in [0, 1] at each of `ts`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_diffusion::{DiffusionDissolver, GaussianDiffusion, Schedule, Unet, UnetConfig};
/// use dia_diffusion::strength::dissolving_strength;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let cfg = UnetConfig { dim: 8, dim_mults: vec![1, 2], ..UnetConfig::default() };
/// let (unet, _) = Unet::init(&cfg, &mut rng, &Device::Cpu)?;
/// let d = DiffusionDissolver::new(GaussianDiffusion::new(unet, Schedule::cosine(1000)), 8,
///     Default::default())?;
/// let x = Tensor::full(0.5f32, (2, 3, 8, 8), &Device::Cpu)?;
/// let s = dissolving_strength(&d, &x, &[30, 99])?;
/// assert_eq!(s.len(), 2);
/// assert!(s[1].mean_abs_change >= 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dissolving_strength(
    dissolver: &DiffusionDissolver,
    x: &Tensor,
    ts: &[usize],
) -> Result<Vec<Strength>> {
    let x64 = x.to_dtype(DType::F64)?;
    let detail = detail_norm(x)?;
    ts.iter()
        .map(|&t| {
            let y = dissolver.dissolve_at(x, t)?;
            let d = (y.to_dtype(DType::F64)? - &x64)?;
            let mean_abs_change = d.abs()?.mean_all()?.to_scalar::<f64>()?;
            let mse = d.sqr()?.mean_all()?.to_scalar::<f64>()?;
            Ok(Strength {
                t,
                mean_abs_change,
                psnr_db: -10.0 * mse.log10(),
                detail_removed: 1.0 - detail_norm(&y)? / detail,
            })
        })
        .collect()
}

/// `strength.csv`'s header: one row per (step, t).
pub const STRENGTH_HEADER: &str = "step,t,mean_abs_change,psnr_db,detail_removed";

/// The CSV rows of one measurement at `step`.
pub fn strength_rows(step: usize, s: &[Strength]) -> Vec<String> {
    s.iter()
        .map(|s| {
            format!(
                "{step},{},{},{},{}",
                s.t, s.mean_abs_change, s.psnr_db, s.detail_removed
            )
        })
        .collect()
}

/// Reads a `strength.csv` written from [`strength_rows`]: (step, strength) per row, in file
/// order. A row that does not hold the five numbers is an error naming the file.
pub fn read_strength_csv(path: &std::path::Path) -> Result<Vec<(usize, Strength)>> {
    let (_, rows) = dia_io::csv::read_csv(path)?;
    rows.iter()
        .map(|row| {
            let v: Vec<f64> = row.iter().filter_map(|x| x.parse().ok()).collect();
            match v[..] {
                [step, t, mean_abs_change, psnr_db, detail_removed] => Ok((
                    step as usize,
                    Strength {
                        t: t as usize,
                        mean_abs_change,
                        psnr_db,
                        detail_removed,
                    },
                )),
                _ => Err(crate::Error::Checkpoint {
                    path: path.to_path_buf(),
                    msg: format!("row {row:?} is not {STRENGTH_HEADER}"),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GaussianDiffusion, Schedule, Unet, UnetConfig};
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn strength_equals_the_direct_formula() -> Result<()> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let cfg = UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2],
            ..UnetConfig::default()
        };
        let (unet, _) = Unet::init(&cfg, &mut rng, &Device::Cpu)?;
        let d = DiffusionDissolver::new(
            GaussianDiffusion::new(unet, Schedule::cosine(1000)),
            8,
            Default::default(),
        )?;
        let v: Vec<f32> = (0..2 * 3 * 64).map(|i| (i % 17) as f32 / 16.0).collect();
        let x = Tensor::from_vec(v.clone(), (2, 3, 8, 8), &Device::Cpu)?;
        let s = dissolving_strength(&d, &x, &[30, 99])?;
        for st in &s {
            let y: Vec<f32> = d.dissolve_at(&x, st.t)?.flatten_all()?.to_vec1()?;
            let diffs: Vec<f64> = y.iter().zip(&v).map(|(a, b)| (*a - *b) as f64).collect();
            let n = diffs.len() as f64;
            let mad = diffs.iter().map(|d| d.abs()).sum::<f64>() / n;
            let mse = diffs.iter().map(|d| d * d).sum::<f64>() / n;
            assert!((st.mean_abs_change - mad).abs() < 1e-9);
            assert!((st.psnr_db - 10.0 * (1.0 / mse).log10()).abs() < 1e-9);
            // H by hand: the 3×3 kernel g gᵀ with zero padding.
            let g = dia_transforms::gaussian_kernel_1d(3).unwrap();
            let hp = |img: &[f32]| -> f64 {
                let mut e = 0.0;
                for p in 0..6 {
                    for i in 0..8usize {
                        for j in 0..8usize {
                            let mut b = 0.0f64;
                            for (di, gi) in g.iter().enumerate() {
                                for (dj, gj) in g.iter().enumerate() {
                                    let (a, c) = (i + di, j + dj);
                                    if (1..=8).contains(&a) && (1..=8).contains(&c) {
                                        b += (*gi * *gj) as f64
                                            * img[p * 64 + (a - 1) * 8 + c - 1] as f64;
                                    }
                                }
                            }
                            e += (img[p * 64 + i * 8 + j] as f64 - b).powi(2);
                        }
                    }
                }
                e.sqrt()
            };
            let want = 1.0 - hp(&y) / hp(&v);
            assert!(
                (st.detail_removed - want).abs() < 1e-5,
                "{} vs {want}",
                st.detail_removed
            );
        }
        // Larger t removes more of the predicted noise: a larger change.
        assert!(s[1].mean_abs_change > s[0].mean_abs_change);
        assert_eq!(strength_rows(7, &s)[0].split(',').count(), 5);
        // Written rows read back exactly (Rust prints f64 round-trip).
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("strength.csv");
        dia_io::run::write_metrics(&csv, STRENGTH_HEADER, &strength_rows(7, &s))?;
        let back = read_strength_csv(&csv)?;
        assert_eq!(back, s.iter().map(|x| (7, *x)).collect::<Vec<_>>());
        std::fs::write(&csv, format!("{STRENGTH_HEADER}\n1,30,0.1\n")).unwrap();
        assert!(read_strength_csv(&csv).is_err());
        Ok(())
    }
}
