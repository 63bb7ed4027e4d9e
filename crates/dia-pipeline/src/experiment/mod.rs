//! Experiment grids (methods × normal classes × seeds): the config, the runner and the
//! results tables. [`run_grid`] runs a whole grid in one process; [`run_ddpm_task`] and
//! [`run_cell_task`] run one task each, for schedulers ([`slurm`] submits them as job arrays);
//! [`collect`] and [`status`] read a grid back; [`archive()`] copies its records without the
//! weights.

pub mod archive;
mod config;
mod epochs;
mod grid;
mod paired;
pub mod slurm;
mod tables;
mod tasks;

pub use archive::{archive, ArchiveSummary};
pub use config::{slug, EvalSection, ExperimentConfig, Method};
pub use epochs::{epoch_eval_dir, reference_protocol, write_epochs, EPOCHS_FILE};
pub use grid::{run_cell, run_ddpm, run_grid};
pub use paired::{paired_differences, t_975, t_interval, PairedDiff};
pub use tables::{
    markdown_table, paired_table, plot_grid, results_markdown, write_tables, CellResult,
};
pub use tasks::{
    cell_dir, collect, ddpm_dir, ddpm_summaries, log_path, run_cell_task, run_ddpm_task, status,
    Cell, State, TaskStatus,
};
