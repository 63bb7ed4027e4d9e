//! DDPM training (spec §2.2) with a run directory and exact resume.
//!
//! Each optimiser step averages `gradient_accumulate_every` micro-batches of normal images
//! (random h-flip, mapped to [−1, 1], t ~ U{0..T−1}, L1 ε-loss), clips the gradient norm, takes
//! an Adam step and updates the EMA. The run directory holds `config.yaml`, `metrics.csv`
//! (step, loss, gradient norm), `model.safetensors` (raw weights: what DIA loads),
//! `ema.safetensors` (the EMA weights, for samples), `checkpoint.safetensors` (everything a
//! resume needs in one file: weights, EMA, Adam moments and counters, so that it can never be
//! torn between two steps) and `samples/step-N.png` (EMA samples). Every file is written
//! atomically; `metrics.csv` is written before the checkpoint, and rows past the checkpoint's
//! step are dropped on resume.
//!
//! Every random choice of step s comes from a generator seeded by (seed, s) and the data order
//! of every epoch from (seed, epoch), so a resumed run ends with the same weights as an
//! uninterrupted one.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use dia_data::{BatchLoader, Dataset, Split};
use dia_io::atomic::write_atomic;
use dia_transforms::random_hflip;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{save_tensors, state_dict, DdpmMeta};
use crate::config::DdpmConfig;
use crate::data::load_ddpm_batch;
use crate::diffusion::{randn_like, GaussianDiffusion};
use crate::dissolver::DiffusionDissolver;
use crate::error::{Error, Result};
use crate::optim::{clip_grad_norm, Adam, Ema};
use crate::plateau::plateaued;
use crate::sample::ddim_sample;
use crate::schedule::Schedule;
use crate::strength::{
    dissolving_strength, strength_rows, Strength, STRENGTH_HEADER, STRENGTH_IMAGES,
    STRENGTH_TIMESTEPS,
};
use crate::unet::Unet;

/// Progress of one optimiser step.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps the run will take.
    pub steps: usize,
    /// Mean loss over the micro-batches.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// A checkpoint (and `strength.csv`) was written after this step.
    pub saved: bool,
}

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Continue from the run directory's checkpoint.
    pub resume: bool,
    /// Stop after this many steps of this invocation (after writing a checkpoint).
    pub stop_after_steps: Option<usize>,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Steps done so far.
    pub steps_done: usize,
    /// Mean loss of the first and of the last tenth of the steps run by this invocation.
    pub first_loss: f64,
    /// See `first_loss`.
    pub last_loss: f64,
    /// The sample grids written.
    pub samples: Vec<PathBuf>,
    /// The run stopped before its `steps` because the loss had plateaued (now or earlier).
    pub plateaued: bool,
    /// The dissolving strength of the weights last saved by this invocation (empty when none
    /// was saved).
    pub strength: Vec<Strength>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    steps_done: usize,
    adam_steps: u64,
    ema: Ema,
}

const HEADER: &str = "step,loss,grad_norm";

fn mixed_rng(seed: u64, salt: u64, i: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

const PARTS: [&str; 3] = ["model.", "ema.", "adam."];
const STATE_KEY: &str = dia_io::keys::DDPM_RUN;

/// Writes the resume checkpoint: the three tensor groups under their prefixes and the
/// counters as JSON metadata, in one atomic file.
fn write_run_checkpoint(
    path: &Path,
    state: &RunState,
    parts: [&BTreeMap<String, Tensor>; 3],
    fingerprint: &str,
) -> Result<()> {
    let mut all: BTreeMap<String, Tensor> = BTreeMap::new();
    for (prefix, part) in PARTS.iter().zip(parts) {
        for (k, v) in part {
            all.insert(format!("{prefix}{k}"), v.clone());
        }
    }
    let state = serde_json::to_string(state).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let entries: Vec<(String, Tensor)> = all.into_iter().collect();
    let meta = BTreeMap::from([
        (STATE_KEY.to_string(), state),
        (
            dia_io::keys::CONFIG_FINGERPRINT.to_string(),
            fingerprint.to_string(),
        ),
    ]);
    Ok(dia_io::save_safetensors(path, &entries, &meta)?)
}

type RunParts = [BTreeMap<String, Tensor>; 3];

/// Reads the resume checkpoint, refusing one written under another config than
/// `fingerprint`'s (copied from another run, or config.yaml edited since).
fn read_run_checkpoint(
    path: &Path,
    dev: &Device,
    fingerprint: &str,
) -> Result<(RunState, RunParts)> {
    let ckpt_err = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    let (tensors, meta) = dia_io::load_safetensors(path, dev)?;
    let json = meta.get(STATE_KEY).ok_or_else(|| {
        ckpt_err(format!(
            "no {STATE_KEY} metadata: not a dia train-ddpm checkpoint"
        ))
    })?;
    let state: RunState =
        serde_json::from_str(json).map_err(|e| ckpt_err(format!("bad {STATE_KEY}: {e}")))?;
    let written_under = meta
        .get(dia_io::keys::CONFIG_FINGERPRINT)
        .map_or("none", String::as_str);
    if written_under != fingerprint {
        return Err(ckpt_err(format!(
            "written under another config (fingerprint {written_under}) than the run's \
             config.yaml (fingerprint {fingerprint}): it belongs to another run, or the config \
             was edited; refusing to resume"
        )));
    }
    let mut parts: RunParts = Default::default();
    for (k, v) in tensors {
        match PARTS.iter().position(|p| k.starts_with(p)) {
            Some(i) => {
                parts[i].insert(k[PARTS[i].len()..].to_string(), v);
            }
            None => return Err(ckpt_err(format!("unexpected tensor {k:?}"))),
        }
    }
    Ok((state, parts))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |f| f.write_all(text.as_bytes())).map_err(Error::from)
}

/// Writes a grid of `n` DDIM samples of the model built from `tensors` to `path`, sampled on
/// `device` (the noise is drawn on the host from `seed`, so every device starts alike).
pub fn write_sample_grid(
    cfg: &DdpmConfig,
    tensors: &BTreeMap<String, Tensor>,
    path: &Path,
    seed: u64,
    device: &Device,
) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unet = Unet::from_tensors(&cfg.unet, &map, device)?;
    let ddpm = GaussianDiffusion::new(unet, Schedule::cosine(cfg.timesteps));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = cfg.num_samples;
    let s = cfg.image_size;
    let imgs = ddim_sample(
        &ddpm,
        (n, cfg.unet.channels, s, s),
        cfg.sample_steps,
        1.0,
        &mut rng,
        &mut |_, _| {},
    )?;
    let img = dia_data::image_io::square_grid(&imgs, 64)?;
    dia_data::image_io::save_png(path, &img)?;
    Ok(())
}

/// Trains a DDPM as configured, in `run_dir`, on `device`; `on_step` sees every optimiser
/// step. Images, flips, timesteps and noise are drawn on the host from the seeded generators
/// (the same on every device); each micro-batch then moves to `device` once.
pub fn train(
    cfg: &DdpmConfig,
    run_dir: &Path,
    device: &Device,
    opts: RunOptions,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<TrainSummary> {
    cfg.validate().map_err(Error::Config)?;
    // Held until training returns: a second process on this run is refused (issue #19).
    let _lock = dia_io::run::RunLock::acquire(run_dir)?;
    let dev = device.clone();
    let size = cfg.image_size;
    // Decoded at the files' own resolution and resized (or padded) as tensors (spec §2.2).
    let data: Arc<dyn Dataset> = cfg.data.open(Split::Train, None)?;
    if cfg.pad > 0 {
        let (h, w) = data.image_size();
        if h + 2 * cfg.pad != size || w + 2 * cfg.pad != size {
            return Err(Error::Config(format!(
                "pad {}: images of {h}x{w} padded on every side do not make image_size {size}",
                cfg.pad
            )));
        }
    }
    let indices = dia_data::normal_indices(data.as_ref(), &cfg.normal_classes)?;
    // The fixed images of every strength measurement: the first of the class, unflipped.
    let strength_idx: Vec<usize> = indices.iter().take(STRENGTH_IMAGES).copied().collect();
    let loader = BatchLoader::new(Arc::clone(&data), indices, cfg.batch_size)?
        .shuffle(cfg.seed)
        .drop_last(false);
    let per_epoch = loader.batches_per_epoch();
    let strength_x = load_ddpm_batch(data.as_ref(), &strength_idx, size, cfg.pad)?;

    let model_path = run_dir.join("model.safetensors");
    let ema_path = run_dir.join("ema.safetensors");
    let ckpt_path = run_dir.join("checkpoint.safetensors");
    let metrics_path = run_dir.join("metrics.csv");
    let strength_path = run_dir.join("strength.csv");
    let schedule = Schedule::cosine(cfg.timesteps);

    let mut adam = Adam::new(cfg.lr, cfg.adam_betas);
    if !opts.resume {
        dia_io::run::check_new_run(run_dir, "model.safetensors")?;
    }
    let yaml = serde_yaml::to_string(cfg).map_err(|e| Error::Config(e.to_string()))?;
    let fingerprint = dia_io::fingerprint(&yaml);
    let (init, mut shadow, mut state, mut metrics, moments) = if opts.resume {
        dia_io::run::check_resumable(run_dir, "checkpoint.safetensors")?;
        dia_io::run::remove_stale_temporaries(run_dir)?;
        let (state, parts) = read_run_checkpoint(&ckpt_path, &dev, &fingerprint)?;
        let rows = dia_io::run::metrics_upto(&metrics_path, state.steps_done)?;
        let [model, ema, moments] = parts;
        (model, ema, state, rows, Some(moments))
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
        let (_, init) = Unet::init(&cfg.unet, &mut rng, &dev)?;
        let state = RunState {
            steps_done: 0,
            adam_steps: 0,
            ema: Ema::new(cfg.ema_decay, cfg.ema_update_every),
        };
        (init, BTreeMap::new(), state, Vec::new(), None)
    };
    let vars: BTreeMap<String, Var> = init
        .iter()
        .map(|(k, v)| Ok((k.clone(), Var::from_tensor(v)?)))
        .collect::<Result<_>>()?;
    let var_tensors: HashMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let unet = Unet::from_tensors(&cfg.unet, &var_tensors, &dev)?;
    let ddpm = GaussianDiffusion::new(unet, schedule.clone());
    if let Some(m) = moments {
        let m: HashMap<String, Tensor> = m.into_iter().collect();
        adam.import(&vars, &m, state.adam_steps)?;
    }
    write_text(&run_dir.join("config.yaml"), &yaml)?;
    // The loss history the plateau rule reads, and the strength rows: both restored on resume.
    let mut history: Vec<f64> = metrics
        .iter()
        .map(|r| step_and_loss(r, &metrics_path).map(|(_, loss)| loss))
        .collect::<Result<_>>()?;
    let mut strength_csv = if opts.resume && strength_path.is_file() {
        dia_io::run::metrics_upto(&strength_path, state.steps_done)?
    } else {
        Vec::new()
    };
    let mut stopped = cfg.plateau.as_ref().is_some_and(|p| plateaued(&history, p));

    let save = |state: &RunState,
                shadow: &BTreeMap<String, Tensor>,
                adam: &Adam,
                metrics: &[String],
                strength_csv: &mut Vec<String>,
                plateaued: bool|
     -> Result<Vec<Strength>> {
        dia_io::run::write_metrics(&metrics_path, HEADER, metrics)?;
        let raw: BTreeMap<String, Tensor> = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        let strength = measure_strength(cfg, &raw, &schedule, &strength_x, &dev)?;
        strength_csv.extend(strength_rows(state.steps_done, &strength));
        dia_io::run::write_metrics(&strength_path, STRENGTH_HEADER, strength_csv)?;
        let (moments, adam_steps) = adam.export();
        let st = RunState {
            steps_done: state.steps_done,
            adam_steps,
            ema: state.ema.clone(),
        };
        write_run_checkpoint(
            &ckpt_path,
            &st,
            [&raw, shadow, &moments.into_iter().collect()],
            &fingerprint,
        )?;
        let meta = |ema| DdpmMeta {
            unet: cfg.unet.clone(),
            image_size: size,
            timesteps: cfg.timesteps,
            step: state.steps_done,
            ema,
            plateaued,
        };
        save_tensors(&model_path, &state_dict(&raw, &schedule)?, &meta(false))?;
        save_tensors(&ema_path, &state_dict(shadow, &schedule)?, &meta(true))?;
        Ok(strength)
    };

    let accum = cfg.gradient_accumulate_every;
    let mut losses = Vec::new();
    let mut samples = Vec::new();
    let mut order_cache: Option<(u64, Vec<usize>)> = None;
    let mut run = 0;
    let mut strength = Vec::new();
    while state.steps_done < cfg.steps && !stopped {
        let step = state.steps_done;
        let mut rng = mixed_rng(cfg.seed, 0x5EED_DD9A, step as u64);
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        let mut loss_sum = 0.0;
        for a in 0..accum {
            // Micro-batch i of the whole run: epoch i / per_epoch, position i % per_epoch.
            let i = (step * accum + a) as u64;
            let (epoch, pos) = (i / per_epoch as u64, (i % per_epoch as u64) as usize);
            if order_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order_cache = Some((epoch, loader.order(epoch)));
            }
            let order = &order_cache.as_ref().expect("just filled").1;
            let bs = cfg.batch_size;
            let idx = order[pos * bs..((pos + 1) * bs).min(order.len())].to_vec();
            let mut x = load_ddpm_batch(data.as_ref(), &idx, size, cfg.pad)?;
            if cfg.hflip {
                x = random_hflip(&x, &mut rng)?;
            }
            let t: Vec<usize> = (0..x.dim(0)?)
                .map(|_| rng.random_range(0..cfg.timesteps))
                .collect();
            let noise = randn_like(&x, &mut rng)?;
            let (x, noise) = (x.to_device(&dev)?, noise.to_device(&dev)?);
            let loss = ddpm.loss(&x, &t, &noise)?;
            let l = loss.to_scalar::<f32>()? as f64;
            if !l.is_finite() {
                return Err(Error::Diverged {
                    step: step + 1,
                    loss: l,
                });
            }
            loss_sum += l;
            let g = (loss / accum as f64)?.backward()?;
            for (name, v) in &vars {
                if let Some(gv) = g.get(v.as_tensor()) {
                    let acc = match grads.remove(name) {
                        Some(prev) => (prev + gv)?,
                        None => gv.clone(),
                    };
                    grads.insert(name.clone(), acc);
                }
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
        adam.step(&vars, &grads)?;
        state.ema.update(&mut shadow, &vars)?;
        state.steps_done += 1;
        run += 1;
        let loss = loss_sum / accum as f64;
        losses.push(loss);
        history.push(loss);
        metrics.push(format!("{},{loss},{grad_norm}", state.steps_done));
        stopped = cfg.plateau.as_ref().is_some_and(|p| plateaued(&history, p));
        let done = state.steps_done == cfg.steps || stopped;
        let stop = opts.stop_after_steps == Some(run);
        let saved = state.steps_done % cfg.save_every == 0 || done || stop;
        if saved {
            strength = save(&state, &shadow, &adam, &metrics, &mut strength_csv, stopped)?;
        }
        let sample_now = cfg.num_samples > 0
            && (done || (cfg.sample_every > 0 && state.steps_done % cfg.sample_every == 0));
        if sample_now {
            let path = run_dir
                .join("samples")
                .join(format!("step-{:06}.png", state.steps_done));
            write_sample_grid(cfg, &shadow, &path, cfg.seed, &dev)?;
            samples.push(path);
        }
        on_step(&StepInfo {
            step: state.steps_done,
            steps: cfg.steps,
            loss,
            grad_norm,
            saved,
        });
        if stop {
            break;
        }
    }
    let tenth = (losses.len() / 10).max(1);
    // NaN when no step ran in this invocation (a finished run resumed).
    let mean = |s: &[f64]| {
        if s.is_empty() {
            f64::NAN
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        }
    };
    Ok(TrainSummary {
        steps_done: state.steps_done,
        first_loss: mean(&losses[..tenth.min(losses.len())]),
        last_loss: mean(&losses[losses.len().saturating_sub(tenth)..]),
        samples,
        plateaued: stopped,
        strength,
    })
}

/// The step and loss of a `metrics.csv` row (`step,loss,grad_norm`) of `path`.
fn step_and_loss(row: &str, path: &Path) -> Result<(usize, f64)> {
    let mut cols = row.split(',');
    let step = cols.next().and_then(|v| v.parse().ok());
    let loss = cols.next().and_then(|v| v.parse().ok());
    step.zip(loss).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("row {row:?} is not {HEADER}"),
    })
}

/// The (step, loss) rows of a run's `metrics.csv`: the curve its reports draw.
pub fn read_losses(path: &Path) -> Result<Vec<(usize, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| step_and_loss(l, path))
        .collect()
}

/// The dissolving strength of the raw weights `raw`, as DIA will use them (the default
/// dissolver: the reference's unnormalised input), on the run's fixed images.
fn measure_strength(
    cfg: &DdpmConfig,
    raw: &BTreeMap<String, Tensor>,
    schedule: &Schedule,
    x: &Tensor,
    device: &Device,
) -> Result<Vec<Strength>> {
    let map: HashMap<String, Tensor> = raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let unet = Unet::from_tensors(&cfg.unet, &map, device)?;
    let ddpm = GaussianDiffusion::new(unet, schedule.clone());
    let dissolver = DiffusionDissolver::new(ddpm, cfg.image_size, Default::default())?;
    dissolving_strength(&dissolver, x, &STRENGTH_TIMESTEPS)
}

/// Whether the DDPM of `model` (a `model.safetensors` of a run of `cfg`) is finished: at its
/// last step, or stopped on a plateau.
pub fn is_finished(model: &Path, cfg: &DdpmConfig) -> Result<bool> {
    if !model.is_file() {
        return Ok(false);
    }
    let meta = crate::checkpoint::read_meta(model)?;
    Ok(meta.is_some_and(|m| m.step >= cfg.steps || m.plateaued))
}

/// Whether the run whose `metrics.csv` is `metrics` finished under `cfg`, read from that record
/// alone: its last step is `cfg.steps`, or its losses meet the plateau rule (the rule training
/// applies to the same rows on resume). For runs archived without their weights.
pub fn is_finished_by_metrics(metrics: &Path, cfg: &DdpmConfig) -> Result<bool> {
    let rows = read_losses(metrics)?;
    let losses: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let last = rows.last().map_or(0, |r| r.0);
    Ok(last >= cfg.steps || cfg.plateau.as_ref().is_some_and(|p| plateaued(&losses, p)))
}
