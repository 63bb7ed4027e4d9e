//! `dia experiment --config E.yaml`: a grid of methods × normal classes × seeds
//! (`dia_pipeline::experiment`) — in this process (`--jobs N`), one task at a time for a
//! scheduler (`--ddpm I`, `--cell I`), or as Slurm job arrays (`--slurm`); `--status` and
//! `--collect` read the grid back; `--archive DIR` copies its records without the weights.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dia_pipeline::experiment::{
    archive, collect, markdown_table, run_cell_task, run_ddpm_task, run_grid, slurm, status,
    ExperimentConfig,
};
use dia_pipeline::Tasks;

use crate::progress::Bars;

#[derive(Args)]
pub(crate) struct ExperimentArgs {
    /// The experiment config (YAML).
    #[arg(long)]
    config: PathBuf,
    /// Output folder (default: `runs/<config name>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cells run at once (one per GPU when several exist).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only check the config and exit.
    #[arg(long)]
    check: bool,
    /// Run only DDPM task I (the DDPM of the I-th normal class), resuming it if interrupted.
    #[arg(long, value_name = "I", conflicts_with_all = ["cell", "collect", "status", "slurm", "archive"])]
    ddpm: Option<usize>,
    /// Run only cell task I (classes, then methods, then seeds), resuming it if interrupted.
    #[arg(long, value_name = "I", conflicts_with_all = ["collect", "status", "slurm", "archive"])]
    cell: Option<usize>,
    /// Rebuild results.csv and results.md from the cells' reports.
    #[arg(long, conflicts_with_all = ["status", "slurm"])]
    collect: bool,
    /// Print where every task stands (not started, running, done, failed, interrupted).
    #[arg(long, conflicts_with = "slurm")]
    status: bool,
    /// Copy the grid's records (reports, metrics, plots, logs; not the weights or the
    /// per-image scores) into DIR, for
    /// committing a reproduction or continuing it elsewhere (`--collect` reads such a copy).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["status", "slurm", "collect"])]
    archive: Option<PathBuf>,
    #[command(flatten)]
    slurm: SlurmArgs,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// `--slurm` and its options.
#[derive(Args)]
struct SlurmArgs {
    /// Submit the grid as Slurm job arrays (DDPMs, then the cells with afterok on them).
    #[arg(long)]
    slurm: bool,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// GPUs per task (`--gres=gpu:N`).
    #[arg(long, default_value_t = 0, requires = "slurm")]
    gpus_per_cell: usize,
    /// CPUs per task.
    #[arg(long, default_value_t = 1, requires = "slurm")]
    cpus_per_cell: usize,
    /// Time limit per task (Slurm's format, e.g. 2-00:00:00).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// An extra `#SBATCH` argument (repeatable), e.g. `--sbatch-arg=--account=lab`.
    #[arg(long, requires = "slurm", allow_hyphen_values = true)]
    sbatch_arg: Vec<String>,
    /// Print the scripts and the sbatch lines without submitting.
    #[arg(long, requires = "slurm")]
    dry_run: bool,
}

pub(crate) fn run(args: ExperimentArgs) -> Result<()> {
    let cfg = ExperimentConfig::read(&args.config)?;
    let (cells, ddpms) = (cfg.cells().len(), cfg.ddpm_classes().len());
    if args.check {
        println!(
            "{}: {cells} cells ({} methods x {} classes x {} seeds), {ddpms} DDPMs",
            args.config.display(),
            cfg.methods.len(),
            cfg.normal_classes.len(),
            cfg.seeds.len()
        );
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(
            args.config
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    });
    if args.status {
        let jobs = slurm::submitted(&out);
        for t in status(&cfg, &out)? {
            let job = jobs
                .iter()
                .find(|(p, _)| p == t.phase)
                .map_or(String::new(), |(_, id)| format!(" job {id}_{}", t.index));
            println!(
                "{:<4} {:>3} {:<11} {}{job}",
                t.phase,
                t.index,
                t.state.to_string(),
                t.name
            );
            if let Some(l) = t
                .last_log_line
                .filter(|_| t.state != dia_pipeline::experiment::State::Done)
            {
                println!("           log: {l}");
            }
        }
        return Ok(());
    }
    if args.collect {
        let results = collect(&cfg, &out)?;
        print!("{}", markdown_table(&results));
        println!("wrote {}", out.join("results.csv").display());
        return Ok(());
    }
    if let Some(dest) = &args.archive {
        let a = archive(&out, dest)?;
        println!(
            "copied {} files ({:.1} MB) of {} into {}; left out {} weight and score files",
            a.files,
            a.bytes as f64 / 1e6,
            out.display(),
            dest.display(),
            a.left_out.len()
        );
        return Ok(());
    }
    if args.slurm.slurm {
        let s = &args.slurm;
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        let opts = slurm::SlurmOptions {
            partition: s.partition.clone(),
            gpus_per_cell: s.gpus_per_cell,
            cpus_per_cell: s.cpus_per_cell,
            time: s.time.clone(),
            sbatch_args: s.sbatch_arg.clone(),
            device: args.device.device.to_string(),
        };
        let dia = std::env::current_exe()?;
        let jobs = slurm::array_jobs(&cfg, &absolute(&args.config), &absolute(&out), &dia, &opts);
        if s.dry_run {
            for (j, line) in jobs.iter().zip(slurm::sbatch_lines(&jobs)) {
                println!("# {} ({} tasks)\n{}", j.path.display(), j.tasks, j.script);
                println!("{}\n", line.join(" "));
            }
            return Ok(());
        }
        for (phase, id) in slurm::submit(&jobs, &absolute(&out))? {
            println!("submitted the {phase} array: job {id}");
        }
        println!(
            "follow it with: dia experiment --config {} --out {} --status",
            args.config.display(),
            out.display()
        );
        return Ok(());
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let device = args.device.open()?;
    let bars = Bars(indicatif::MultiProgress::new());
    if let Some(i) = args.ddpm {
        let progress = bars.task(&format!("ddpm task {i}"));
        let model = run_ddpm_task(&cfg, &out, i, &device, progress.as_ref())?;
        println!("DDPM task {i} done: {}", model.display());
        return Ok(());
    }
    if let Some(i) = args.cell {
        let progress = bars.task(&format!("cell task {i}"));
        let r = run_cell_task(&cfg, &out, i, &device, progress.as_ref())?;
        println!(
            "cell task {i} done: {} {} seed {}: AUROC {:.4}",
            r.method, r.class, r.seed, r.auroc
        );
        return Ok(());
    }
    let results = run_grid(&cfg, &out, args.jobs, &device, &bars)?;
    print!("{}", markdown_table(&results));
    println!(
        "wrote {} and {}",
        out.join("results.csv").display(),
        out.join("results.md").display()
    );
    Ok(())
}
