//! Golden tests against denoising_diffusion_pytorch 0.27.12 (`scripts/fixtures/ddpm.py`):
//! a Trainer checkpoint of `Unet(dim=8, dim_mults=(1,2,4,8))` with perturbed random weights,
//! loaded through `load_trainer_checkpoint`, gives PyTorch's ε prediction, `p_sample(x, t)[1]`
//! (the dissolved image), the L1 training loss and its gradients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use dia_diffusion::checkpoint::{load_trainer_checkpoint, read_trainer_checkpoint};
use dia_diffusion::{
    DiffusionDissolver, DissolverConfig, GaussianDiffusion, Schedule, Unet, UnetConfig,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn check(dir: &Path, dim: usize, tol: f32) {
    let dev = Device::Cpu;
    let (ddpm, meta) =
        load_trainer_checkpoint(&dir.join(format!("ddpm_w{dim}.pt")), 32, &dev).unwrap();
    assert_eq!(
        meta.unet,
        UnetConfig {
            dim,
            ..UnetConfig::default()
        }
    );
    let io = candle_core::safetensors::load(dir.join(format!("ddpm_w{dim}_io.safetensors")), &dev)
        .unwrap();
    let x = &io["x"];
    for t in [30usize, 50, 99] {
        let (x0, eps) = ddpm.x_start(x, t).unwrap();
        let d_eps = max_abs(&eps, &io[&format!("eps.t{t}")]);
        let d_x0 = max_abs(&x0, &io[&format!("x_start.t{t}")]);
        println!("dim {dim} t {t}: eps {d_eps:.2e}, x_start {d_x0:.2e}");
        assert!(
            d_eps <= tol && d_x0 <= tol,
            "t={t}: eps {d_eps}, x_start {d_x0}"
        );
    }
    // The whole dissolver on 64-px images: bilinear down to 32, one step, bilinear back.
    let d = DiffusionDissolver::new(ddpm.clone(), 32, DissolverConfig::default()).unwrap();
    let y = d.dissolve_at(&io["x64"], 50).unwrap();
    let d64 = max_abs(&y, &io["dissolve64.t50"]);
    println!("dim {dim}: dissolve 64 px {d64:.2e}");
    assert!(d64 <= tol, "dissolve64 {d64}");
}

#[test]
fn matches_pytorch_narrow_unet() {
    check(&fixtures(), 8, 1e-4);
}

/// The full-size `Unet(dim=64)`: run `python scripts/fixtures/ddpm.py --full DIR` first, then
/// `DIA_DDPM_FULL_FIXTURE=DIR cargo test -p dia-diffusion --test golden -- --ignored`.
#[test]
#[ignore]
fn matches_pytorch_full_unet() {
    let dir = std::env::var("DIA_DDPM_FULL_FIXTURE").expect("DIA_DDPM_FULL_FIXTURE");
    check(Path::new(&dir), 64, 1e-4);
}

#[test]
fn loss_and_gradients_match_pytorch() {
    let dev = Device::Cpu;
    let dir = fixtures();
    let tensors = read_trainer_checkpoint(&dir.join("ddpm_w8.pt"), "model").unwrap();
    let io = candle_core::safetensors::load(dir.join("ddpm_w8_io.safetensors"), &dev).unwrap();
    let mut vars = HashMap::new();
    let mut unet_tensors = HashMap::new();
    for (k, v) in &tensors {
        if let Some(n) = k.strip_prefix("model.") {
            let var = Var::from_tensor(v).unwrap();
            unet_tensors.insert(n.to_string(), var.as_tensor().clone());
            vars.insert(n.to_string(), var);
        }
    }
    let cfg = UnetConfig {
        dim: 8,
        ..UnetConfig::default()
    };
    let unet = Unet::from_tensors(&cfg, &unet_tensors, &dev).unwrap();
    let ddpm = GaussianDiffusion::new(unet, Schedule::from_tensors(&tensors, 1000).unwrap());
    let t: Vec<usize> = io["loss.t"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let loss = ddpm.loss(&io["loss.x"], &t, &io["loss.noise"]).unwrap();
    let want = io["loss.value"].to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!((got - want).abs() < 1e-5, "loss {got} vs {want}");
    let grads = loss.backward().unwrap();
    for (k, want) in io.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let name = &k["grad.".len()..];
        let g = grads.get(vars[name].as_tensor()).unwrap();
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let d = max_abs(g, want);
        println!("grad {name}: max |diff| {d:.2e} (max |g| {scale:.2e})");
        assert!(
            d <= 1e-4 * scale.max(1e-3) + 1e-7,
            "{name}: {d} (scale {scale})"
        );
    }
}

#[test]
fn full_size_unet_has_the_reference_parameter_count() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (_, tensors) = Unet::init(&UnetConfig::default(), &mut rng, &Device::Cpu).unwrap();
    // Spec §2.1 (measured on the library) and §8: 276 UNet tensors.
    assert_eq!(dia_diffusion::parameter_count(&tensors), 36_251_779);
    assert_eq!(tensors.len(), 276);
}

#[test]
fn mismatched_checkpoints_list_every_problem() {
    let dev = Device::Cpu;
    let mut tensors = read_trainer_checkpoint(&fixtures().join("ddpm_w8.pt"), "model").unwrap();
    tensors.remove("model.final_conv.bias");
    tensors.insert(
        "model.extra.weight".into(),
        Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap(),
    );
    tensors.insert(
        "model.mid_attn.fn.norm.g".into(),
        Tensor::zeros((1, 7, 1, 1), candle_core::DType::F32, &dev).unwrap(),
    );
    let cfg = UnetConfig {
        dim: 8,
        ..UnetConfig::default()
    };
    let err = dia_diffusion::checkpoint::diffusion_from_tensors(&tensors, &cfg, 1000, &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing: model.final_conv.bias"), "{err}");
    assert!(err.contains("unexpected: model.extra.weight"), "{err}");
    assert!(
        err.contains("wrong shape: model.mid_attn.fn.norm.g"),
        "{err}"
    );
}
