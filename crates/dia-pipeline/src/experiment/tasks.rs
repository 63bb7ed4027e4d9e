//! A grid as independent tasks, for schedulers (Slurm job arrays, a shell loop, GNU
//! parallel): task `I` of the DDPM phase trains the DDPM of one normal class, task `I` of the
//! cell phase trains and evaluates one cell. Every task is idempotent and restartable — a
//! finished one is read back, an interrupted one resumes from its last checkpoint — and
//! writes only inside its own directory; [`collect`] rebuilds the results tables from the
//! cells, and [`status`] says where each task stands.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::config::{slug, ExperimentConfig, Method};
use super::grid::{run_cell, run_ddpm};
use super::tables::{write_tables, CellResult};
use crate::ddpm_report::{write_ddpm_report, DdpmSummary};
use crate::error::{io_err, Error, Result};
use crate::progress::Progress;

/// One cell of a grid: a method, a normal class and a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The method.
    pub method: Method,
    /// The normal class.
    pub class: String,
    /// The seed.
    pub seed: u64,
}

impl Cell {
    /// `method class seed N`, as progress and errors name it.
    pub fn name(&self) -> String {
        format!("{} {} seed {}", self.method.name(), self.class, self.seed)
    }
}

impl ExperimentConfig {
    /// The normal classes whose DDPM the grid trains (none without a diffusion method), in
    /// task order.
    pub fn ddpm_classes(&self) -> Vec<String> {
        if self.methods.contains(&Method::DiaDiffusion) {
            self.normal_classes.clone()
        } else {
            Vec::new()
        }
    }

    /// The cells, in task order: classes, then methods, then seeds.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for class in &self.normal_classes {
            for &method in &self.methods {
                for &seed in &self.seeds {
                    cells.push(Cell {
                        method,
                        class: class.clone(),
                        seed,
                    });
                }
            }
        }
        cells
    }
}

/// The folder of the DDPM of `class`.
pub fn ddpm_dir(out: &Path, class: &str) -> PathBuf {
    out.join("ddpm").join(slug(class))
}

/// The folder of a cell.
pub fn cell_dir(out: &Path, cell: &Cell) -> PathBuf {
    out.join(cell.method.name())
        .join(slug(&cell.class))
        .join(format!("seed-{}", cell.seed))
}

/// Writes the grid's resolved config into `out` (the same bytes from every task).
pub(crate) fn write_experiment(cfg: &ExperimentConfig, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let yaml = serde_yaml::to_string(cfg).map_err(|e| Error::Config(e.to_string()))?;
    let path = out.join("experiment.yaml");
    Ok(dia_io::atomic::write_atomic(&path, |f| {
        std::io::Write::write_all(f, yaml.as_bytes())
    })?)
}

fn task_out_of_range(what: &str, i: usize, n: usize) -> Error {
    Error::Config(format!(
        "{what} task {i} does not exist: the grid has {n} (0..{n})"
    ))
}

/// Runs DDPM task `i` (trains, resumes or reads back the DDPM of `ddpm_classes()[i]`).
pub fn run_ddpm_task(
    cfg: &ExperimentConfig,
    out: &Path,
    i: usize,
    device: &Device,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let classes = cfg.ddpm_classes();
    let class = classes
        .get(i)
        .ok_or_else(|| task_out_of_range("DDPM", i, classes.len()))?;
    write_experiment(cfg, out)?;
    run_ddpm(
        &cfg.ddpm_config(class)?,
        &ddpm_dir(out, class),
        device,
        progress,
    )
}

/// The finished DDPM a diffusion cell of `class` needs, or an error saying which task to run.
fn finished_ddpm(cfg: &ExperimentConfig, out: &Path, class: &str) -> Result<PathBuf> {
    let model = ddpm_dir(out, class).join("model.safetensors");
    let done = dia_diffusion::train::is_finished(&model, &cfg.ddpm_config(class)?)?;
    if !done {
        let i = cfg.ddpm_classes().iter().position(|c| c == class);
        return Err(Error::Config(format!(
            "the DDPM of class {class:?} is not trained yet ({} unfinished); run DDPM task {} first",
            model.display(),
            i.map_or("?".into(), |i| i.to_string())
        )));
    }
    Ok(model)
}

/// Runs cell task `i`: trains (or resumes) and evaluates `cells()[i]`, or reads it back when
/// done. A diffusion cell needs its class's DDPM task finished.
pub fn run_cell_task(
    cfg: &ExperimentConfig,
    out: &Path,
    i: usize,
    device: &Device,
    progress: &dyn Progress,
) -> Result<CellResult> {
    let cells = cfg.cells();
    let cell = cells
        .get(i)
        .ok_or_else(|| task_out_of_range("cell", i, cells.len()))?;
    write_experiment(cfg, out)?;
    let run = || -> Result<CellResult> {
        let ddpm = match cell.method {
            Method::DiaDiffusion => Some(finished_ddpm(cfg, out, &cell.class)?),
            _ => None,
        };
        let tc = cfg.cell_config(cell.method, &cell.class, cell.seed, ddpm.as_deref())?;
        run_cell(
            &tc,
            cell.method,
            &cell_dir(out, cell),
            &cfg.eval,
            device,
            progress,
        )
    };
    run().map_err(|e| Error::Cell {
        cell: cell.name(),
        source: Box::new(e),
    })
}

/// Reads every cell's report, writes `results.csv` and `results.md`, and returns the results
/// in task order; a cell without a report is an error naming it (and every other missing
/// one).
pub fn collect(cfg: &ExperimentConfig, out: &Path) -> Result<Vec<CellResult>> {
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (i, cell) in cfg.cells().iter().enumerate() {
        let dir = cell_dir(out, cell);
        let report = dir.join("eval").join("report.json");
        if !report.is_file() {
            missing.push(format!("{i} ({})", cell.name()));
            continue;
        }
        let tc = cfg.cell_config(cell.method, &cell.class, cell.seed, None)?;
        results.push(super::grid::cell_result(&tc, cell.method, &dir, &cfg.eval)?);
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "{}: cells not done yet: {}",
            out.display(),
            missing.join(", ")
        )));
    }
    write_tables(out, &results, &ddpm_summaries(cfg, out)?)?;
    Ok(results)
}

/// The reports of the grid's finished DDPMs (rewritten from their metrics), by class. A DDPM
/// without its weights (an [`archive`](super::archive())) counts as finished by its
/// `metrics.csv`.
pub fn ddpm_summaries(cfg: &ExperimentConfig, out: &Path) -> Result<Vec<(String, DdpmSummary)>> {
    let mut v = Vec::new();
    for class in cfg.ddpm_classes() {
        let dir = ddpm_dir(out, &class);
        let metrics = dir.join("metrics.csv");
        let by_record = !dir.join("model.safetensors").exists()
            && metrics.is_file()
            && dia_diffusion::train::is_finished_by_metrics(&metrics, &cfg.ddpm_config(&class)?)?;
        if by_record || finished_ddpm(cfg, out, &class).is_ok() {
            let summary = write_ddpm_report(&ddpm_dir(out, &class), &cfg.ddpm_config(&class)?)?;
            v.push((class, summary));
        }
    }
    Ok(v)
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing written yet.
    NotStarted,
    /// A process holds its directory's lock.
    Running,
    /// Finished (a DDPM at its last step, a cell with its report).
    Done,
    /// Its log ends in an error and no process runs it.
    Failed,
    /// Started, not running, no error in its log: a resubmission resumes it.
    Interrupted,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::NotStarted => "not started",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Interrupted => "interrupted",
        })
    }
}

/// The status of one task.
#[derive(Clone, Debug)]
pub struct TaskStatus {
    /// `ddpm` or `cell`.
    pub phase: &'static str,
    /// The task index within its phase.
    pub index: usize,
    /// What it runs (`ddpm Trouser`, `csi Trouser seed 0`).
    pub name: String,
    /// Where it stands.
    pub state: State,
    /// The last non-empty line of its log (`OUT/logs/PHASE-I.log`), if there is one.
    pub last_log_line: Option<String>,
}

/// The log file of a task, where the Slurm scripts of [`crate::experiment::slurm`] send it.
pub fn log_path(out: &Path, phase: &str, i: usize) -> PathBuf {
    out.join("logs").join(format!("{phase}-{i}.log"))
}

fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

/// Where every task of the grid stands, DDPMs first.
pub fn status(cfg: &ExperimentConfig, out: &Path) -> Result<Vec<TaskStatus>> {
    let mut all = Vec::new();
    let judge = |phase: &'static str, i: usize, name: String, dirs: &[PathBuf], done: bool| {
        let log = log_path(out, phase, i);
        let last_log_line = last_line(&log);
        let state = if done {
            State::Done
        } else if dirs.iter().any(|d| dia_io::run::is_locked(d)) {
            State::Running
        } else if last_log_line
            .as_deref()
            .is_some_and(|l| l.starts_with("error:") || l.contains("] error"))
        {
            State::Failed
        } else if dirs.iter().any(|d| d.exists()) {
            State::Interrupted
        } else {
            State::NotStarted
        };
        TaskStatus {
            phase,
            index: i,
            name,
            state,
            last_log_line,
        }
    };
    for (i, class) in cfg.ddpm_classes().iter().enumerate() {
        let dir = ddpm_dir(out, class);
        let done = finished_ddpm(cfg, out, class).is_ok();
        all.push(judge("ddpm", i, format!("ddpm {class}"), &[dir], done));
    }
    for (i, cell) in cfg.cells().iter().enumerate() {
        let dir = cell_dir(out, cell);
        let done = dir.join("eval").join("report.json").is_file();
        let dirs = [dir.clone(), dir.join("eval")];
        all.push(judge("cell", i, cell.name(), &dirs, done));
    }
    Ok(all)
}
