//! The benchmark workloads of `dia bench`: the hot paths of training, dissolving and scoring,
//! each timed as the median of several runs after warm-up. `scripts/bench_torch.py` runs the
//! same workloads in PyTorch (docs/performance.md), so the two can be compared on one machine.
//!
//! ```no_run
//! let m = dia_pipeline::bench::measure("csi-score", &candle_core::Device::Cpu, 1, 3)?;
//! println!("{:.0} images/s", m.images_per_s);
//! # Ok::<(), dia_pipeline::Error>(())
//! ```

use std::time::Instant;

use candle_core::{Device, Tensor};
use dia_contrastive::{train_step, BatchBuilder, Lars, LarsConfig, NegMode};
use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
use dia_transforms::Shift;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// The workloads, with what each one times.
pub const WORKLOADS: [(&str, &str); 9] = [
    (
        "encoder-train-cifar32",
        "ResNet-18 (CIFAR stem), 32x32, 64 images (8 x 4 rotations x 2 views): the CSI training step (forward, NT-Xent + shift CE, backward, LARS)",
    ),
    ("encoder-eval-cifar32", "ResNet-18 (CIFAR stem), 32x32, batch 64: forward in eval mode"),
    (
        "encoder-train-imagenet64",
        "ResNet-18 (ImageNet stem), 64x64, 64 images: the CSI training step as above",
    ),
    (
        "encoder-train-imagenet224",
        "ResNet-18 (ImageNet stem), 224x224, 64 images (8 x 4 rotations x 2 views): the CSI training step of the paper's medical sets",
    ),
    (
        "encoder-eval-imagenet224",
        "ResNet-18 (ImageNet stem), 224x224, batch 64: forward in eval mode",
    ),
    (
        "unet-dissolve-32",
        "UNet(dim=64, dim_mults=(1,2,4,8)), 32x32, 64 images: one dissolving step (eps prediction, clamped x0 at t = 50)",
    ),
    (
        "dissolve-224",
        "the diffusion dissolver on 64 images of 224x224: resize to 32 (bilinear, no antialias), the UNet step above at t = 50, resize back to 224",
    ),
    (
        "dia-train-cifar32",
        "the DIA training step, CIFAR stem, 32x32, 8 images: 2 clean groups (4 rotations x 2 views) + the dissolver (UNet above) called once per rotation at t = 40/55/70/85, 96 images, NT-Xent-neg + shift CE, backward, LARS",
    ),
    (
        "csi-score",
        "CSI score of 1000 test images against 5000 training axes, D = 128, K = 4 (images = test images)",
    ),
];

/// One workload's timing.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Images per second at the median time.
    pub images_per_s: f64,
    /// The median of the timed runs, in seconds.
    pub median_s: f64,
    /// Floating-point operations per second at the median time (2 per multiply-accumulate,
    /// counted once per workload: [`flops`]); `None` for the CSI score.
    pub gflops: Option<f64>,
}

/// A step of a workload, timed as a whole.
type Step = Box<dyn FnMut() -> Result<()>>;

/// Times workload `name` on `device`: `warmup` untimed runs, then the median of `runs`.
pub fn measure(name: &str, device: &Device, warmup: usize, runs: usize) -> Result<Measurement> {
    if runs == 0 {
        return Err(Error::Config(
            "the number of timed runs must be at least 1".into(),
        ));
    }
    let (mut step, images) = workload(name, device)?;
    let flop = flops(name);
    for _ in 0..warmup {
        step()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        step()?;
        // A GPU runs asynchronously: the step is done when its kernels are.
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median_s = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    Ok(Measurement {
        images_per_s: images as f64 / median_s,
        median_s,
        gflops: flop.map(|f| f / median_s / 1e9),
    })
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`; `None` off Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn encoder_workload(arch: Arch, size: usize, train: bool, dev: &Device) -> Result<Step> {
    let dev = dev.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = ResNet18::new(EncoderConfig::new(arch), Source::Init(&mut rng), &dev)?;
    if !train {
        let x =
            dia_nn::init::uniform((64, 3, size, size), 0.5, &mut rng, &dev)?.affine(1.0, 0.5)?;
        return Ok(Box::new(move || {
            let _: Tensor = model.forward_t(&x, false)?.simclr.sum_all()?;
            Ok(())
        }));
    }
    // Exactly the CSI training step of `dia train`, on a fixed batch of 8 images x 4 rotations
    // x 2 views = 64 (built once, on the host as in `dia train`: the augmentation is not timed,
    // the batch's move to the device is, as every step of `dia train` makes it).
    let x =
        dia_nn::init::uniform((8, 3, size, size), 0.5, &mut rng, &Device::Cpu)?.affine(1.0, 0.5)?;
    let builder = BatchBuilder::new(Shift::Rotation, None);
    let batch = builder.build(&x, &mut rng)?;
    let mut lars = Lars::new(LarsConfig::default());
    Ok(Box::new(move || {
        train_step(&model, &batch, NegMode::ShiftedRemoved, &mut lars, 0.1)?;
        Ok(())
    }))
}

fn unet_workload(dev: &Device) -> Result<Step> {
    let dev = dev.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    // Frozen, as every dissolver's DDPM is (`DiffusionDissolver::new`).
    let ddpm = bench_ddpm(&dev, &mut rng)?.freeze()?;
    let x = dia_nn::init::uniform((64, 3, 32, 32), 0.5, &mut rng, &dev)?.affine(1.0, 0.5)?;
    Ok(Box::new(move || {
        let _: Tensor = ddpm.x_start(&x, 50)?.0.sum_all()?;
        Ok(())
    }))
}

/// The DDPM of every UNet workload: `Unet(dim=64, dim_mults=(1,2,4,8))`, cosine schedule.
fn bench_ddpm(
    dev: &Device,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<dia_diffusion::GaussianDiffusion> {
    let (unet, _) = dia_diffusion::Unet::init(&dia_diffusion::UnetConfig::default(), rng, dev)?;
    Ok(dia_diffusion::GaussianDiffusion::new(
        unet,
        dia_diffusion::Schedule::cosine(1000),
    ))
}

/// The dissolver of the UNet workloads: [`bench_ddpm`] at 32 px.
fn dissolver(dev: &Device) -> Result<dia_diffusion::DiffusionDissolver> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    Ok(dia_diffusion::DiffusionDissolver::new(
        bench_ddpm(dev, &mut rng)?,
        32,
        dia_diffusion::DissolverConfig::default(),
    )?)
}

fn dissolve_224_workload(dev: &Device) -> Result<Step> {
    let dissolver = dissolver(dev)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    // Images come from the host loader, as in `dia train`; the dissolver resizes there.
    let x =
        dia_nn::init::uniform((64, 3, 224, 224), 0.5, &mut rng, &Device::Cpu)?.affine(1.0, 0.5)?;
    Ok(Box::new(move || {
        let _: Tensor = dissolver.dissolve_at(&x, 50)?.sum_all()?;
        Ok(())
    }))
}

/// The timesteps of the DIA step, one per rotation (fixed, so both implementations dissolve
/// alike; `dia train` draws them in 30..=99).
const DIA_T: [usize; 4] = [40, 55, 70, 85];

fn dia_step_workload(dev: &Device) -> Result<Step> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = ResNet18::new(
        EncoderConfig::new(Arch::ResNet18),
        Source::Init(&mut rng),
        dev,
    )?;
    let dissolver = dissolver(dev)?;
    let x = dia_nn::init::uniform((8, 3, 32, 32), 0.5, &mut rng, &Device::Cpu)?.affine(1.0, 0.5)?;
    // The two clean groups, built once as in the CSI workload; the third group is dissolved
    // in every step, as `BatchBuilder` does (augmentation is not timed).
    let clean = BatchBuilder::new(Shift::Rotation, None).build(&x, &mut rng)?;
    let labels = dia_transforms::shift_labels(4, 8);
    let shift_labels: Vec<u32> = (0..3).flat_map(|_| labels.iter().copied()).collect();
    let mut lars = Lars::new(LarsConfig::default());
    Ok(Box::new(move || {
        let mut parts = vec![clean.images.clone()];
        for (k, &t) in DIA_T.iter().enumerate() {
            parts.push(Shift::Rotation.apply(&dissolver.dissolve_at(&x, t)?, k)?);
        }
        let batch = dia_contrastive::ContrastiveBatch {
            images: Tensor::cat(&parts, 0)?,
            shift_labels: shift_labels.clone(),
            groups: 3,
        };
        train_step(&model, &batch, NegMode::ShiftedRemoved, &mut lars, 0.1)?;
        Ok(())
    }))
}

/// Floating-point operations of one step of workload `name` (2 per multiply-accumulate; a
/// training step as three forward passes: forward, input gradient, weight gradient).
pub fn flops(name: &str) -> Option<f64> {
    use dia_encoder::macs::encoder_macs;
    let enc = |arch, size| encoder_macs(&EncoderConfig::new(arch), size) as f64;
    let unet = dia_diffusion::macs::unet_macs(&dia_diffusion::UnetConfig::default(), 32) as f64;
    let (cifar, imagenet) = (Arch::ResNet18, Arch::ResNet18ImageNet);
    Some(
        2.0 * match name {
            "encoder-train-cifar32" => 3.0 * 64.0 * enc(cifar, 32),
            "encoder-eval-cifar32" => 64.0 * enc(cifar, 32),
            "encoder-train-imagenet64" => 3.0 * 64.0 * enc(imagenet, 64),
            "encoder-train-imagenet224" => 3.0 * 64.0 * enc(imagenet, 224),
            "encoder-eval-imagenet224" => 64.0 * enc(imagenet, 224),
            "unet-dissolve-32" | "dissolve-224" => 64.0 * unet,
            "dia-train-cifar32" => 3.0 * 96.0 * enc(cifar, 32) + 32.0 * unet,
            _ => return None,
        },
    )
}

fn csi_workload(dev: &Device) -> Result<Step> {
    // Features on the device as `dia eval` leaves them; the score itself runs on the host in
    // f64 (dia-eval's csi module), so its time includes the copy.
    let dev = dev.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut feats = |n: usize| -> Result<Vec<dia_eval::ShiftFeatures>> {
        (0..4)
            .map(|_| {
                Ok(dia_eval::ShiftFeatures {
                    simclr: dia_nn::init::normal((n, 128), 1.0, &mut rng, &dev)?,
                    shift: dia_nn::init::normal((n, 4), 1.0, &mut rng, &dev)?.affine(1.0, 3.0)?,
                })
            })
            .collect()
    };
    let (train, test) = (feats(5000)?, feats(1000)?);
    let stats = dia_eval::CsiStatistics::fit(&train, dia_eval::ScoreKind::Csi)?;
    Ok(Box::new(move || {
        stats.score(&test)?;
        Ok(())
    }))
}

/// The step of workload `name` and the images one step processes.
fn workload(name: &str, dev: &Device) -> Result<(Step, usize)> {
    use Arch::{ResNet18 as Cifar, ResNet18ImageNet as ImageNet};
    Ok(match name {
        "encoder-train-cifar32" => (encoder_workload(Cifar, 32, true, dev)?, 64),
        "encoder-eval-cifar32" => (encoder_workload(Cifar, 32, false, dev)?, 64),
        "encoder-train-imagenet64" => (encoder_workload(ImageNet, 64, true, dev)?, 64),
        "encoder-train-imagenet224" => (encoder_workload(ImageNet, 224, true, dev)?, 64),
        "encoder-eval-imagenet224" => (encoder_workload(ImageNet, 224, false, dev)?, 64),
        "unet-dissolve-32" => (unet_workload(dev)?, 64),
        "dissolve-224" => (dissolve_224_workload(dev)?, 64),
        "dia-train-cifar32" => (dia_step_workload(dev)?, 96),
        "csi-score" => (csi_workload(dev)?, 1000),
        other => {
            return Err(Error::Config(format!(
                "unknown workload {other:?}; available: {}",
                WORKLOADS.map(|w| w.0).join(", ")
            )))
        }
    })
}
