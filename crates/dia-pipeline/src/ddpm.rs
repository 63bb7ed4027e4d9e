//! The DDPM's tools outside training (spec §2): dissolving given images at chosen timesteps,
//! sampling new images, and writing either as a PNG grid or a `.npy` array — what
//! `dia dissolve` and `dia sample` run.
//!
//! ```no_run
//! use dia_pipeline::ddpm::{dissolve_input, DissolveRequest};
//! let req = DissolveRequest { timesteps: vec![50, 100], ..DissolveRequest::default() };
//! let out = dissolve_input("runs/ddpm/ema.safetensors".as_ref(), "x.png".as_ref(), &req, &candle_core::Device::Cpu)?;
//! out.write("dissolved.png".as_ref())?;
//! # Ok::<(), dia_pipeline::Error>(())
//! ```

use std::path::Path;

use candle_core::{Device, Tensor};
use dia_diffusion::checkpoint::load_any;
use dia_diffusion::sample::{ddim_sample, p_sample_loop};
use dia_diffusion::{DiffusionDissolver, DissolverConfig, Resolution, UnetConfig};
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// What to dissolve with: the timesteps, the decoding size and the input mapping.
#[derive(Clone, Debug)]
pub struct DissolveRequest {
    /// Timesteps, each in `0..T` (default: the paper's figure, 50, 100, 200, 400).
    pub timesteps: Vec<usize>,
    /// Side images from files are decoded at (default: the DDPM's resolution).
    pub image_size: Option<usize>,
    /// Map [0, 1] to [-1, 1] around the UNet (not the reference's behaviour).
    pub normalize_input: bool,
}

impl Default for DissolveRequest {
    fn default() -> Self {
        Self {
            timesteps: vec![50, 100, 200, 400],
            image_size: None,
            normalize_input: false,
        }
    }
}

/// Images and their dissolved versions, one per timestep.
#[derive(Clone, Debug)]
pub struct Dissolved {
    /// The input images (N, 3, H, W).
    pub original: Tensor,
    /// The timesteps.
    pub timesteps: Vec<usize>,
    /// One (N, 3, H, W) tensor per timestep.
    pub dissolved: Vec<Tensor>,
}

/// Dissolves the images of `input` (an image, a folder or a `.npy`) with the DDPM checkpoint
/// `ckpt` (ours or a lucidrains Trainer file).
pub fn dissolve_input(
    ckpt: &Path,
    input: &Path,
    req: &DissolveRequest,
    device: &Device,
) -> Result<Dissolved> {
    let (ddpm, meta) = load_any(ckpt, device)?;
    let t_max = ddpm.schedule().timesteps();
    if req.timesteps.is_empty() || req.timesteps.iter().any(|&t| t >= t_max) {
        return Err(Error::Config(format!(
            "--t takes timesteps in 0..{t_max}, got {:?}",
            req.timesteps
        )));
    }
    let (x, _) = dia_data::load_images(input, req.image_size.unwrap_or(meta.image_size))?;
    let d = DiffusionDissolver::new(
        ddpm,
        meta.image_size,
        DissolverConfig {
            normalize_input: req.normalize_input,
            resolution: Resolution::Auto,
            ..DissolverConfig::default()
        },
    )?;
    let dissolved = req
        .timesteps
        .iter()
        .map(|&t| d.dissolve_at(&x, t))
        .collect::<dia_diffusion::Result<_>>()?;
    Ok(Dissolved {
        original: x,
        timesteps: req.timesteps.clone(),
        dissolved,
    })
}

impl Dissolved {
    /// Writes `.png` (a strip per image: the original, then one tile per timestep) or `.npy`
    /// (the dissolved images, stacked over the timesteps when there are several), and says
    /// what was written.
    pub fn write(&self, output: &Path) -> Result<String> {
        match extension(output)? {
            Format::Npy => {
                let y = if self.dissolved.len() == 1 {
                    self.dissolved[0].clone()
                } else {
                    Tensor::stack(&self.dissolved, 0)?
                };
                write_npy(&y, output)?;
                Ok(format!("wrote {} (shape {:?})", output.display(), y.dims()))
            }
            Format::Png => {
                let columns: Vec<&Tensor> = std::iter::once(&self.original)
                    .chain(self.dissolved.iter())
                    .collect();
                let img = dia_data::image_io::columns_grid(&columns, 96)?;
                dia_data::image_io::save_png(output, &img)?;
                Ok(format!(
                    "wrote {} ({} images; columns: original, t = {:?})",
                    output.display(),
                    self.original.dim(0)?,
                    self.timesteps
                ))
            }
        }
    }
}

/// How sampling runs.
#[derive(Clone, Copy, Debug)]
pub struct SampleRequest {
    /// Number of images.
    pub n: usize,
    /// DDIM steps; 0 runs the full ancestral loop over all T steps.
    pub steps: usize,
    /// DDIM η.
    pub eta: f64,
    /// Seed of the noise.
    pub seed: u64,
}

/// Samples `req.n` images from the DDPM checkpoint `ckpt`.
pub fn sample(
    ckpt: &Path,
    req: SampleRequest,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Tensor> {
    if req.n == 0 {
        return Err(Error::Config(
            "the number of samples must be positive".into(),
        ));
    }
    let (ddpm, meta) = load_any(ckpt, device)?;
    let shape = (req.n, meta.unet.channels, meta.image_size, meta.image_size);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(req.seed);
    let total = if req.steps == 0 {
        meta.timesteps
    } else {
        req.steps
    };
    progress.set_length(total as u64);
    let mut on_step = |done: usize, _| progress.set_position(done as u64);
    Ok(if req.steps == 0 {
        p_sample_loop(&ddpm, shape, &mut rng, &mut on_step)?
    } else {
        ddim_sample(&ddpm, shape, req.steps, req.eta, &mut rng, &mut on_step)?
    })
}

enum Format {
    Png,
    Npy,
}

fn extension(output: &Path) -> Result<Format> {
    match output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("npy") => Ok(Format::Npy),
        _ => Err(Error::Config(format!(
            "{}: the output must end in .png or .npy",
            output.display()
        ))),
    }
}

/// Checks that `output` ends in `.png` or `.npy`, before any work is done for it.
pub fn check_output(output: &Path) -> Result<()> {
    extension(output).map(|_| ())
}

/// Writes images (N, 3, H, W) in [0, 1] as a square `.png` grid or a `.npy` array; any other
/// extension is refused (a `.bmp` name would otherwise hold PNG bytes).
pub fn write_images(images: &Tensor, output: &Path) -> Result<()> {
    match extension(output)? {
        Format::Npy => write_npy(images, output),
        Format::Png => {
            let img = dia_data::image_io::square_grid(images, 64)?;
            Ok(dia_data::image_io::save_png(output, &img)?)
        }
    }
}

/// Writes `x` as `.npy` through a temporary file and a rename.
fn write_npy(x: &Tensor, path: &Path) -> Result<()> {
    Ok(dia_io::atomic::write_atomic_path(path, |tmp| {
        x.write_npy(tmp).map_err(std::io::Error::other)
    })?)
}

/// The UNet's multiply-accumulates per image at 32, 64 and 128 px, as a short table.
pub fn macs_table(ckpt: Option<&Path>) -> Result<String> {
    let cfg = match ckpt {
        // Only the config is read: nothing is computed, so the host is enough.
        Some(p) => load_any(p, &Device::Cpu)?.1.unet,
        None => UnetConfig::default(),
    };
    let mut out = format!(
        "UNet(dim={}, dim_mults={:?}) multiply-accumulates per image:\n",
        cfg.dim, cfg.dim_mults
    );
    for s in [32, 64, 128] {
        out.push_str(&format!(
            "  {s:>3} px: {:>7.2} GMACs\n",
            dia_diffusion::macs::unet_macs(&cfg, s) as f64 / 1e9
        ));
    }
    Ok(out)
}
