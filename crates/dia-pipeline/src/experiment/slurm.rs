//! A grid as Slurm job arrays: one array for the DDPMs (one task per normal class that needs
//! one) and one for the cells, the latter held with `--dependency=afterok:` on the former (a
//! diffusion cell needs its class's DDPM; `afterok` on the whole array is the simple
//! dependency that is always right). Each task runs `dia experiment --config E.yaml --out OUT
//! --ddpm I` or `--cell I`, which resumes an interrupted task, so a requeued or pre-empted task
//! picks up from its last checkpoint. Logs go to `OUT/logs/{ddpm,cell}-I.log` (appended on
//! requeue), the scripts to `OUT/slurm/`, the submitted job ids to `OUT/slurm/jobs.txt`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::config::ExperimentConfig;
use super::tasks::log_path;
use crate::error::{io_err, Error, Result};

/// How the tasks are submitted.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// GPUs per task (`--gres=gpu:N`); 0 for none.
    pub gpus_per_cell: usize,
    /// CPUs per task (`--cpus-per-task`, and the task's thread count).
    pub cpus_per_cell: usize,
    /// `--time` of each task.
    pub time: Option<String>,
    /// Extra `#SBATCH` arguments, verbatim.
    pub sbatch_args: Vec<String>,
    /// The `--device` the tasks compute on (`auto`, `cpu`, `cuda`, ...).
    pub device: String,
}

/// One job array: its script and where it was written.
#[derive(Clone, Debug)]
pub struct ArrayJob {
    /// `ddpm` or `cell`.
    pub phase: &'static str,
    /// Number of tasks.
    pub tasks: usize,
    /// The batch script.
    pub script: String,
    /// Where it is written (`OUT/slurm/PHASE.sbatch`).
    pub path: PathBuf,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The array jobs of the grid (the DDPM array only when a method needs it). `dia` is the
/// binary the tasks run, `config` the experiment config they read; both should be absolute.
pub fn array_jobs(
    cfg: &ExperimentConfig,
    config: &Path,
    out: &Path,
    dia: &Path,
    opts: &SlurmOptions,
) -> Vec<ArrayJob> {
    let mut jobs = Vec::new();
    for (phase, tasks) in [
        ("ddpm", cfg.ddpm_classes().len()),
        ("cell", cfg.cells().len()),
    ] {
        if tasks == 0 {
            continue;
        }
        let log = log_path(out, phase, 0)
            .with_file_name(format!("{phase}-%a.log"))
            .display()
            .to_string();
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name=dia-{phase}\n"));
        s.push_str(&format!("#SBATCH --array=0-{}\n", tasks - 1));
        s.push_str(&format!("#SBATCH --output={log}\n"));
        s.push_str("#SBATCH --open-mode=append\n#SBATCH --requeue\n");
        s.push_str(&format!(
            "#SBATCH --cpus-per-task={}\n",
            opts.cpus_per_cell.max(1)
        ));
        if let Some(p) = &opts.partition {
            s.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        if opts.gpus_per_cell > 0 {
            s.push_str(&format!("#SBATCH --gres=gpu:{}\n", opts.gpus_per_cell));
        }
        if let Some(t) = &opts.time {
            s.push_str(&format!("#SBATCH --time={t}\n"));
        }
        for a in &opts.sbatch_args {
            s.push_str(&format!("#SBATCH {a}\n"));
        }
        s.push_str(
            "# One thread per CPU Slurm gave the task.\nexport RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n",
        );
        s.push_str(&format!(
            "exec {} experiment --config {} --out {} --{phase} \"$SLURM_ARRAY_TASK_ID\" --device {}\n",
            quote(&dia.display().to_string()),
            quote(&config.display().to_string()),
            quote(&out.display().to_string()),
            quote(&opts.device),
        ));
        jobs.push(ArrayJob {
            phase,
            tasks,
            script: s,
            path: out.join("slurm").join(format!("{phase}.sbatch")),
        });
    }
    jobs
}

/// The `sbatch` arguments of each job, in submission order; `{ddpm}` stands for the DDPM
/// array's job id in the cells' dependency.
pub fn sbatch_lines(jobs: &[ArrayJob]) -> Vec<Vec<String>> {
    let has_ddpm = jobs.iter().any(|j| j.phase == "ddpm");
    jobs.iter()
        .map(|j| {
            let mut args = vec!["sbatch".to_string(), "--parsable".to_string()];
            if j.phase == "cell" && has_ddpm {
                args.push("--dependency=afterok:{ddpm}".into());
            }
            args.push(j.path.display().to_string());
            args
        })
        .collect()
}

/// Writes the scripts (and the log folder) and submits them with `sbatch`; returns
/// (phase, job id) per array and records them in `OUT/slurm/jobs.txt`.
pub fn submit(jobs: &[ArrayJob], out: &Path) -> Result<Vec<(&'static str, String)>> {
    for j in jobs {
        let dir = j.path.parent().expect("OUT/slurm");
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        dia_io::atomic::write_atomic(&j.path, |f| {
            std::io::Write::write_all(f, j.script.as_bytes())
        })?;
    }
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(io_err(&logs))?;
    let mut ids: Vec<(&'static str, String)> = Vec::new();
    for (j, line) in jobs.iter().zip(sbatch_lines(jobs)) {
        let ddpm = ids
            .iter()
            .find(|(p, _)| *p == "ddpm")
            .map(|(_, id)| id.clone());
        let args: Vec<String> = line
            .iter()
            .skip(1)
            .map(|a| a.replace("{ddpm}", ddpm.as_deref().unwrap_or("")))
            .collect();
        let output = Command::new("sbatch").args(&args).output().map_err(|e| {
            Error::Config(format!(
                "cannot run sbatch ({e}); is this a Slurm login node? (--dry-run prints the scripts)"
            ))
        })?;
        if !output.status.success() {
            return Err(Error::Config(format!(
                "sbatch {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        // `--parsable` prints `id` or `id;cluster`.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let id = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        ids.push((j.phase, id));
    }
    let text: String = ids.iter().map(|(p, id)| format!("{p} {id}\n")).collect();
    let path = out.join("slurm").join("jobs.txt");
    dia_io::atomic::write_atomic(&path, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    Ok(ids)
}

/// The job ids recorded by [`submit`], by phase.
pub fn submitted(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out.join("slurm").join("jobs.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, id)| (p.to_string(), id.to_string()))
        .collect()
}
