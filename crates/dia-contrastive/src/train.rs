//! The training loop of CSI and DIA with run directories, checkpoints and exact resume.
//!
//! A run directory holds `config.yaml` (the resolved configuration), `metrics.csv` (one row per
//! iteration: epoch, iteration, loss terms, lr), and the last checkpoint: `last.safetensors`
//! (the encoder, reference names, metadata) and `last.train.safetensors` (everything a resume
//! needs in one file, so that it can never be torn between two epochs: the encoder with its
//! batch-norm statistics, the LARS momentum buffers, and the finished epochs and LR stepper in
//! its metadata). All are written atomically at the end
//! of every `save_every`-th epoch, so an interrupted run resumes from its last checkpoint.
//!
//! Resume is exact: the data order and every random choice of epoch e come from generators
//! seeded by (seed, e), and the optimiser and schedule state are restored.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use dia_data::{BatchLoader, Dataset, Split};
use dia_encoder::{save_checkpoint, EncoderConfig, ResNet18, Source};
use dia_io::atomic::write_atomic;
use dia_io::keys;
use dia_transforms::{Dissolve, DissolveKind};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::batch::BatchBuilder;
use crate::config::{Mode, TrainConfig};
use crate::error::{run_err, Error, Result};
use crate::lars::{Lars, LarsConfig};
use crate::schedule::{LrStepper, WarmupCosine};
use crate::step::{train_step, StepLosses};

/// Progress of one iteration, for progress bars and logs.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Iteration within the epoch, 0-based.
    pub iteration: usize,
    /// Iterations this epoch will run.
    pub iterations: usize,
    /// The losses.
    pub losses: StepLosses,
    /// The learning rate used.
    pub lr: f64,
    /// Images (before shifts and views) per second in this iteration.
    pub images_per_s: f64,
}

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Continue from the run directory's last checkpoint.
    pub resume: bool,
    /// Stop after this many epochs of this invocation (after their checkpoint).
    pub stop_after_epochs: Option<usize>,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Epochs finished so far.
    pub epochs_done: usize,
    /// Mean total loss of the first and of the last epoch run by this invocation.
    pub first_epoch_loss: f64,
    /// See `first_epoch_loss`.
    pub last_epoch_loss: f64,
}

/// The state saved next to the weights.
#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    epochs_done: usize,
    stepper: LrStepper,
}

const HEADER: &str = "epoch,iteration,loss,loss_contrastive,loss_shift,lr";

fn epoch_rng(seed: u64, epoch: usize) -> rand_chacha::ChaCha8Rng {
    // A distinct stream per epoch, so epoch e is reproducible without replaying e − 1 epochs.
    rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F),
    )
}

/// Whether `dissolver` is what `cfg` asks for: one exactly when the config names a dissolving
/// kind (`dia_pipeline::dissolver` builds it from the config).
fn check_dissolver(cfg: &TrainConfig, dissolver: Option<&dyn Dissolve>) -> Result<()> {
    let wanted = cfg.shift_trans_type.dissolve != DissolveKind::None;
    match (wanted, dissolver) {
        (true, None) => Err(Error::Config(format!(
            "shift_trans_type {} needs a dissolver (build it with dia_pipeline::dissolver)",
            cfg.shift_trans_type
        ))),
        (false, Some(d)) => Err(Error::Config(format!(
            "shift_trans_type {} dissolves nothing, but a dissolver ({}) was given",
            cfg.shift_trans_type,
            d.name()
        ))),
        _ => Ok(()),
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(write_atomic(path, |f| f.write_all(text.as_bytes()))?)
}

/// The resume file of a run directory.
pub const TRAIN_FILE: &str = "last.train.safetensors";
const STATE_KEY: &str = dia_io::keys::RUN_STATE;

fn write_train_file(
    path: &Path,
    model: &ResNet18,
    lars: &Lars,
    state: &RunState,
    fingerprint: &str,
) -> Result<()> {
    let entries: Vec<(String, Tensor)> = model
        .state_dict()?
        .into_iter()
        .map(|(k, v)| (format!("model.{k}"), v))
        .chain(
            lars.export(model.vars())
                .into_iter()
                .map(|(k, v)| (format!("lars.{k}"), v)),
        )
        .collect();
    let meta = BTreeMap::from([
        (
            STATE_KEY.to_string(),
            serde_json::to_string(state).map_err(|e| run_err(path, e))?,
        ),
        (
            dia_encoder::checkpoint::CONFIG_KEY.to_string(),
            serde_json::to_string(&model.config()).map_err(|e| run_err(path, e))?,
        ),
        (
            keys::CONFIG_FINGERPRINT.to_string(),
            fingerprint.to_string(),
        ),
    ]);
    Ok(dia_io::save_safetensors(path, &entries, &meta)?)
}

type TrainParts = (
    RunState,
    EncoderConfig,
    HashMap<String, Tensor>,
    HashMap<String, Tensor>,
);

/// Reads the resume file, refusing one written under another config than `fingerprint`'s
/// (a file copied from another run, or a config.yaml edited since).
fn read_train_file(path: &Path, fingerprint: &str) -> Result<TrainParts> {
    // Decoded in host memory; the model builder and the optimiser move them to their device.
    let (tensors, meta) = dia_io::load_safetensors(path, &Device::Cpu)?;
    let get = |k: &str| {
        meta.get(k).ok_or_else(|| {
            run_err(
                path,
                format!("no {k} metadata: not a dia train resume file"),
            )
        })
    };
    let written_under = get(keys::CONFIG_FINGERPRINT)?;
    if written_under != fingerprint {
        return Err(run_err(
            path,
            format!(
                "written under another config (fingerprint {written_under}) than the run's \
                 config.yaml (fingerprint {fingerprint}): it belongs to another run, or the \
                 config was edited; refusing to resume"
            ),
        ));
    }
    let state: RunState = serde_json::from_str(get(STATE_KEY)?).map_err(|e| run_err(path, e))?;
    let enc: EncoderConfig = serde_json::from_str(get(dia_encoder::checkpoint::CONFIG_KEY)?)
        .map_err(|e| run_err(path, e))?;
    let (mut weights, mut buffers) = (HashMap::new(), HashMap::new());
    for (k, v) in tensors {
        if let Some(n) = k.strip_prefix("model.") {
            weights.insert(n.to_string(), v);
        } else if let Some(n) = k.strip_prefix("lars.") {
            buffers.insert(n.to_string(), v);
        } else {
            return Err(run_err(path, format!("unexpected tensor {k:?}")));
        }
    }
    Ok((state, enc, weights, buffers))
}

/// Epochs finished by the run in `run_dir` according to its resume file (`None` without one).
pub fn epochs_done(run_dir: &Path) -> Option<usize> {
    let meta = dia_io::read_metadata(&run_dir.join(TRAIN_FILE)).ok()?;
    serde_json::from_str::<RunState>(meta.get(STATE_KEY)?)
        .ok()
        .map(|s| s.epochs_done)
}

/// Trains an encoder as configured, in `run_dir`, on `device`; `on_step` sees every iteration.
/// `dissolver` is the config's dissolver (`None` exactly when `shift_trans_type` dissolves
/// nothing); this crate sees dissolving only through the [`Dissolve`] trait.
///
/// Images are decoded, shifted and augmented on the host with the seeded generators (so every
/// device sees the same batches); each built batch moves to `device` once, where the encoder
/// and the optimiser live (and the DDPM of a diffusion dissolver, on the device it was built
/// for).
pub fn train(
    cfg: &TrainConfig,
    run_dir: &Path,
    device: &Device,
    dissolver: Option<&dyn Dissolve>,
    opts: RunOptions,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<TrainSummary> {
    cfg.validate().map_err(Error::Config)?;
    // Held until training returns: a second process on this run is refused (issue #19).
    let _lock = dia_io::run::RunLock::acquire(run_dir)?;
    let dev = device.clone();
    let size = cfg.image_size.map(|s| (s, s));
    let train_set: Arc<dyn Dataset> = cfg.data.open(Split::Train, size)?;
    let indices = dia_data::normal_indices(train_set.as_ref(), &cfg.normal_classes)?;
    let loader =
        BatchLoader::new(Arc::clone(&train_set), indices, cfg.batch_size)?.shuffle(cfg.seed);
    let full_len = loader.batches_per_epoch();
    check_dissolver(cfg, dissolver)?;

    let ckpt = run_dir.join("last.safetensors");
    let train_path = run_dir.join(TRAIN_FILE);
    let metrics_path = run_dir.join("metrics.csv");
    let schedule = WarmupCosine {
        base_lr: cfg.lr,
        multiplier: cfg.warmup_multiplier,
        warmup_epochs: cfg.warmup_epochs as f64,
        epochs: cfg.epochs as f64,
    };
    let mut lars = Lars::new(LarsConfig::default());
    if opts.resume {
        dia_io::run::check_resumable(run_dir, TRAIN_FILE)?;
        dia_io::run::remove_stale_temporaries(run_dir)?;
    } else {
        dia_io::run::check_new_run(run_dir, "last.safetensors")?;
    }
    let yaml = serde_yaml::to_string(cfg).map_err(|e| Error::Config(e.to_string()))?;
    let fingerprint = dia_io::fingerprint(&yaml);
    let (model, mut state, mut metrics) = if opts.resume {
        let (state, enc, weights, buffers) = read_train_file(&train_path, &fingerprint)?;
        let model = ResNet18::new(enc, Source::Tensors(&weights), &dev)
            .map_err(|e| run_err(&train_path, e))?;
        lars.import(model.vars(), &buffers)?;
        // Keep the metrics of the checkpointed epochs only.
        let rows = dia_io::run::metrics_upto(&metrics_path, state.epochs_done)?;
        (model, state, rows)
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
        let enc = EncoderConfig {
            width: cfg.encoder.width,
            ..EncoderConfig::new(cfg.encoder.arch)
        };
        let model = ResNet18::new(enc, Source::Init(&mut rng), &dev)?;
        (
            model,
            RunState {
                epochs_done: 0,
                stepper: LrStepper::new(schedule),
            },
            Vec::new(),
        )
    };
    write_text(&run_dir.join("config.yaml"), &yaml)?;

    let dissolver = match cfg.mode {
        Mode::Dia => dissolver,
        Mode::Csi => None,
    };
    let builder = BatchBuilder {
        blur_all_views: cfg.blur_all_views,
        ..BatchBuilder::new(cfg.shift_trans_type.shift, dissolver)
    };
    let iterations = cfg
        .max_iterations_per_epoch
        .map_or(full_len, |m| m.min(full_len));
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    let mut run_epochs = 0;
    for epoch in state.epochs_done + 1..=cfg.epochs {
        let mut rng = epoch_rng(cfg.seed, epoch);
        if let Some(d) = dissolver {
            d.set_epoch(epoch);
        }
        let mut sum = 0.0;
        for (n, batch) in loader.epoch(epoch as u64).take(iterations).enumerate() {
            let t = Instant::now();
            let batch = batch?;
            let contrastive = builder.build(&batch.images, &mut rng)?;
            let lr = state.stepper.lr();
            let losses = train_step(&model, &contrastive, cfg.neg_mode, &mut lars, lr)?;
            state
                .stepper
                .step(epoch as f64 - 1.0 + n as f64 / full_len as f64);
            sum += losses.total();
            metrics.push(format!(
                "{epoch},{n},{},{},{},{lr}",
                losses.total(),
                losses.contrastive,
                losses.shift
            ));
            on_step(&StepInfo {
                epoch,
                iteration: n,
                iterations,
                losses,
                lr,
                images_per_s: batch.labels.len() as f64 / t.elapsed().as_secs_f64(),
            });
        }
        let mean = sum / iterations as f64;
        if run_epochs == 0 {
            first_loss = mean;
        }
        last_loss = mean;
        run_epochs += 1;
        state.epochs_done = epoch;
        if epoch % cfg.save_every == 0
            || epoch == cfg.epochs
            || opts.stop_after_epochs == Some(run_epochs)
        {
            let meta = BTreeMap::from([
                (
                    keys::MODE.to_string(),
                    serde_json::to_string(&cfg.mode).unwrap_or_default(),
                ),
                (
                    keys::SHIFT_TRANS_TYPE.to_string(),
                    cfg.shift_trans_type.to_string(),
                ),
                (
                    keys::NORMAL_CLASSES.to_string(),
                    serde_json::to_string(&cfg.normal_classes).unwrap_or_default(),
                ),
                (
                    keys::IMAGE_SIZE.to_string(),
                    serde_json::to_string(&cfg.image_size).unwrap_or_default(),
                ),
                (keys::EPOCH.to_string(), epoch.to_string()),
                (keys::CONFIG_FINGERPRINT.to_string(), fingerprint.clone()),
            ]);
            // Metrics first (rows past the checkpoint are dropped on resume), then the resume
            // file, then the encoder for users: a kill between any two leaves a consistent run.
            dia_io::run::write_metrics(&metrics_path, HEADER, &metrics)?;
            write_train_file(&train_path, &model, &lars, &state, &fingerprint)?;
            save_checkpoint(&model, &ckpt, &meta)?;
        }
        if opts.stop_after_epochs == Some(run_epochs) {
            break;
        }
    }
    Ok(TrainSummary {
        epochs_done: state.epochs_done,
        first_epoch_loss: first_loss,
        last_epoch_loss: last_loss,
    })
}
