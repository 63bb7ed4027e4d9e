//! `dia data check` (`dia_data::check_dataset`) and `dia data preview`
//! (`dia_pipeline::preview`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

/// The embedded Fashion-MNIST sample, relative to the workspace root.
const SAMPLE_DIR: &str = "datasets/fashion-mnist-sample";

#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// Report class counts, image sizes and every unreadable file; exit non-zero on problems.
    ///
    /// DIR is an image folder (`ROOT/{train,test}/<class>/` or `ROOT/<class>/`), a folder of IDX
    /// files, or a MedMNIST .npz file.
    Check {
        /// The dataset to check.
        dir: PathBuf,
    },
    /// Write a PNG grid showing what the transforms do to real images: one row per image, the
    /// original, its rotations and cut-permutations, Gaussian and median blur, and two SimCLR
    /// views.
    Preview {
        /// IDX folder, image folder or .npz file (default: the embedded Fashion-MNIST sample).
        #[arg(long, default_value = SAMPLE_DIR)]
        data: PathBuf,
        /// Number of images (rows).
        #[arg(long, default_value_t = 8)]
        n: usize,
        /// Seed of the augmentation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "runs/preview.png")]
        output: PathBuf,
    },
}

pub(crate) fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Check { dir } => {
            let report = dia_data::check_dataset(&dir)?;
            println!("{report}");
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DataCommand::Preview {
            data,
            n,
            seed,
            output,
        } => {
            let (img, rows) = dia_pipeline::preview::transforms_grid(&data, n, seed)?;
            dia_data::image_io::save_png(&output, &img)?;
            println!(
                "wrote {} ({} images; columns: {})",
                output.display(),
                rows,
                dia_pipeline::preview::COLUMNS
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
