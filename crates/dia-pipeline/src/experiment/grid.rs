//! Running a grid: one DDPM per normal class for the diffusion cells, then every cell (train,
//! evaluate), each resumable — a finished DDPM or cell is read back, an interrupted one
//! continues from its checkpoint — with at most `jobs` tasks at once, as threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::Device;
use dia_contrastive::TrainConfig;
use dia_diffusion::DdpmConfig;
use dia_eval::TtaConfig;

use super::config::{EvalSection, ExperimentConfig, Method};
use super::epochs::{epoch_eval_dir, reference_protocol, write_epochs};
use super::tables::{write_tables, CellResult};
use super::tasks::{run_cell_task, run_ddpm_task, write_experiment};
use crate::ddpm_report::write_ddpm_report;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate_checkpoint, read_report, EvalOptions};
use crate::progress::{Progress, Tasks};

/// Trains (or resumes, or skips when finished) the DDPM of `dir` on `device`; returns its
/// `model.safetensors`.
pub fn run_ddpm(
    cfg: &DdpmConfig,
    dir: &Path,
    device: &Device,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let model = dir.join("model.safetensors");
    if dia_diffusion::train::is_finished(&model, cfg)? {
        progress.finish("done before".into());
        return Ok(model);
    }
    let resume = dir.join("checkpoint.safetensors").is_file();
    progress.set_length(cfg.steps as u64);
    // The report of the latest checkpoint (the last step always writes one); the first error
    // stops further reports and is returned after training.
    let mut report = None;
    let mut on_step = |s: &dia_diffusion::train::StepInfo| {
        progress.set_position(s.step as u64);
        progress.set_message(format!("loss {:.4}", s.loss));
        if s.saved && !matches!(report, Some(Err(_))) {
            report = Some(write_ddpm_report(dir, cfg));
        }
    };
    let opts = dia_diffusion::train::RunOptions {
        resume,
        stop_after_steps: None,
    };
    let summary = dia_diffusion::train::train(cfg, dir, device, opts, &mut on_step)?;
    let report = match report {
        Some(r) => r?,
        None => write_ddpm_report(dir, cfg)?,
    };
    progress.finish(format!(
        "trained: {} steps{}, smoothed loss {:.4}",
        summary.steps_done,
        if summary.plateaued { " (plateau)" } else { "" },
        report.smoothed_loss
    ));
    Ok(model)
}

/// The seconds of encoder training recorded in a cell (summed over invocations).
const TIMING_FILE: &str = "train_seconds.txt";

pub(crate) fn recorded_seconds(dir: &Path) -> Option<f64> {
    std::fs::read_to_string(dir.join(TIMING_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Trains (or resumes) and evaluates one cell on `device`; a cell with a report is read back.
/// With `eval.every_epochs` set, the checkpoint is also evaluated after every such epoch
/// (the reference's protocol, [`super::epochs`]).
pub fn run_cell(
    cfg: &TrainConfig,
    method: Method,
    dir: &Path,
    eval: &EvalSection,
    device: &Device,
    progress: &dyn Progress,
) -> Result<CellResult> {
    let report_path = dir.join("eval").join("report.json");
    let opts = EvalOptions {
        score: eval.score,
        tta: TtaConfig {
            ood_samples: eval.ood_samples,
            seed: cfg.seed,
            ..TtaConfig::default()
        },
    };
    let every = eval.every_epochs;
    let ckpt = dir.join("last.safetensors");
    if !report_path.is_file() {
        loop {
            let done = dia_contrastive::epochs_done(dir).unwrap_or(0);
            // Evaluated before training on, so an interruption between the two is caught up.
            if every > 0 && done > 0 && done < cfg.epochs && done.is_multiple_of(every) {
                let out = epoch_eval_dir(dir, done);
                if !out.join("report.json").is_file() {
                    progress.set_message(format!("evaluating epoch {done}"));
                    evaluate_checkpoint(cfg, &ckpt, &out, opts, device, progress)?;
                }
            }
            if done >= cfg.epochs {
                break;
            }
            // The next multiple of `every` (or the end, without per-epoch evaluation).
            let until = done
                .checked_div(every)
                .map_or(cfg.epochs, |k| ((k + 1) * every).min(cfg.epochs));
            train_epochs(cfg, dir, device, done, until - done, progress)?;
        }
        progress.set_message("evaluating".into());
        evaluate_checkpoint(cfg, &ckpt, &dir.join("eval"), opts, device, progress)?;
    }
    let result = cell_result(cfg, method, dir, eval)?;
    progress.finish(format!("AUROC {:.4}", result.auroc));
    Ok(result)
}

/// The result of a finished cell, read back from its reports (and, with
/// `eval.every_epochs`, its per-epoch reports, recorded in `epochs.csv`).
pub(crate) fn cell_result(
    cfg: &TrainConfig,
    method: Method,
    dir: &Path,
    eval: &EvalSection,
) -> Result<CellResult> {
    let report = read_report(&dir.join("eval").join("report.json"))?;
    let seconds = recorded_seconds(dir).unwrap_or(f64::NAN);
    let mut result = CellResult::from_report(method.name(), cfg.seed, &report, seconds, dir);
    if eval.every_epochs > 0 {
        let aurocs = epoch_aurocs(cfg, dir, eval.every_epochs, report.pooled.auroc)?;
        write_epochs(dir, &aurocs)?;
        result.best_epoch = reference_protocol(&aurocs);
    }
    Ok(result)
}

/// The recorded (epoch, AUROC) list of a cell evaluated every `every` epochs: the epoch
/// reports, then the last epoch's (`last`).
pub(crate) fn epoch_aurocs(
    cfg: &TrainConfig,
    dir: &Path,
    every: usize,
    last: f64,
) -> Result<Vec<(usize, f64)>> {
    let mut v = Vec::new();
    for e in (every..cfg.epochs).step_by(every) {
        let r = read_report(&epoch_eval_dir(dir, e).join("report.json"))?;
        v.push((e, r.pooled.auroc));
    }
    v.push((cfg.epochs, last));
    Ok(v)
}

/// Trains `n` more epochs of the cell in `dir` (from `done`), adding the time to the cell's
/// record.
fn train_epochs(
    cfg: &TrainConfig,
    dir: &Path,
    device: &Device,
    done: usize,
    n: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let t = Instant::now();
    let mut started = false;
    let mut position = 0;
    let mut on_step = |s: &dia_contrastive::StepInfo| {
        if !started {
            started = true;
            position = ((s.epoch - 1) * s.iterations) as u64;
            progress.set_length((s.iterations * cfg.epochs) as u64);
        }
        position += 1;
        progress.set_position(position);
        progress.set_message(format!("epoch {} loss {:.3}", s.epoch, s.losses.total()));
    };
    let dissolver = crate::dissolver(cfg, device)?;
    let opts = dia_contrastive::RunOptions {
        resume: done > 0,
        stop_after_epochs: Some(n),
    };
    dia_contrastive::train(cfg, dir, device, dissolver.as_deref(), opts, &mut on_step)?;
    let text = format!(
        "{}\n",
        recorded_seconds(dir).unwrap_or(0.0) + t.elapsed().as_secs_f64()
    );
    let timing = dir.join(TIMING_FILE);
    dia_io::atomic::write_atomic(&timing, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    Ok(())
}

/// Runs the whole grid of `cfg` in `out` on `device`, at most `jobs` tasks at once; writes the
/// tables and returns the cell results in grid order (classes, then methods, then seeds).
pub fn run_grid(
    cfg: &ExperimentConfig,
    out: &Path,
    jobs: usize,
    device: &Device,
    tasks: &dyn Tasks,
) -> Result<Vec<CellResult>> {
    if jobs == 0 {
        return Err(Error::Config("jobs must be at least 1".into()));
    }
    write_experiment(cfg, out)?;
    // Phase 1: one DDPM per normal class, for the diffusion cells.
    let classes = cfg.ddpm_classes();
    let indices: Vec<usize> = (0..classes.len()).collect();
    let done = parallel(jobs, &indices, |&i| {
        let progress = tasks.task(&format!("ddpm {}", classes[i]));
        run_ddpm_task(cfg, out, i, device, progress.as_ref())
    });
    done.into_iter().collect::<Result<Vec<_>>>()?;
    // Phase 2: the cells.
    let cells = cfg.cells();
    let indices: Vec<usize> = (0..cells.len()).collect();
    let results = parallel(jobs, &indices, |&i| {
        let progress = tasks.task(&cells[i].name());
        run_cell_task(cfg, out, i, device, progress.as_ref())
    });
    let results: Vec<CellResult> = results.into_iter().collect::<Result<_>>()?;
    write_tables(out, &results, &super::tasks::ddpm_summaries(cfg, out)?)?;
    Ok(results)
}

/// Runs `f` on every item with at most `jobs` at once; results in item order.
fn parallel<T: Sync, R: Send>(jobs: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("not poisoned");
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *out[i].lock().expect("not poisoned") = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .expect("not poisoned")
                .expect("every item ran")
        })
        .collect()
}
