//! Experiment grids (methods × normal classes × seeds): the config, the runner and the
//! results tables. The `dia experiment` command is a thin front end to [`run_grid`].

mod config;
mod grid;
mod tables;

pub use config::{slug, EvalSection, ExperimentConfig, Method};
pub use grid::{run_cell, run_ddpm, run_grid};
pub use tables::{markdown_table, write_tables, CellResult};
