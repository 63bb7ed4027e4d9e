//! `cargo xtask`: project automation that is not part of the `dia` tool.
//!
//! - `fetch-datasets [NAME..]`: download, verify and lay out the paper's datasets from the
//!   manifests in `datasets/` (see `docs/datasets.md`);
//! - `convert encoder|ddpm IN OUT.safetensors`: PyTorch checkpoints of the reference to ours;
//! - `make-sample`: rebuild the embedded Fashion-MNIST sample from the Debian package.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod convert;
mod download;
mod extract;
mod fetch;
mod manifest;
mod sample;

#[derive(Parser)]
#[command(about = "Project automation for dia")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// A reference encoder (`last.model`, `best_*.model`).
    Encoder,
    /// A lucidrains Trainer DDPM checkpoint (`model-N.pt`).
    Ddpm,
}

#[derive(Subcommand)]
enum Command {
    /// Download, verify and lay out datasets (all when no name is given; --list shows them).
    FetchDatasets {
        /// Dataset names (manifests `datasets/<name>.yaml`).
        names: Vec<String>,
        /// Where datasets go.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Folder of the manifests.
        #[arg(long, default_value = "datasets")]
        manifests: PathBuf,
        /// Folder of the split files.
        #[arg(long, default_value = "datasets/splits")]
        splits: PathBuf,
        /// Use this local file instead of downloading (for account-only sources; one dataset).
        #[arg(long)]
        from: Option<PathBuf>,
        /// List the datasets and exit.
        #[arg(long)]
        list: bool,
    },
    /// Convert a PyTorch checkpoint of the reference to safetensors.
    Convert {
        /// What the checkpoint holds.
        kind: Kind,
        /// The PyTorch file (or hf://OWNER/REPO/FILE with the `hub` feature).
        input: String,
        /// The safetensors file to write.
        output: PathBuf,
        /// Resolution the DDPM was trained at (ddpm only).
        #[arg(long, default_value_t = 32)]
        image_size: usize,
    },
    /// Rebuild the embedded Fashion-MNIST sample: the first N images of every class from the
    /// train and test splits of the Debian package `dataset-fashion-mnist`.
    MakeSample {
        /// Folder with the Fashion-MNIST IDX files.
        #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
        source: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "datasets/fashion-mnist-sample")]
        out: PathBuf,
        /// Training images per class.
        #[arg(long, default_value_t = 300)]
        train_per_class: usize,
        /// Test images per class.
        #[arg(long, default_value_t = 100)]
        test_per_class: usize,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::FetchDatasets {
            names,
            dir,
            manifests,
            splits,
            from,
            list,
        } => {
            let all = manifest::all(&manifests)?;
            if list {
                for m in &all {
                    println!("{:<16} {} ({})", m.name, m.title, m.licence);
                }
                return Ok(());
            }
            let chosen: Vec<&manifest::Manifest> = if names.is_empty() {
                all.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        all.iter().find(|m| &m.name == n).ok_or_else(|| {
                            anyhow::anyhow!(
                                "unknown dataset {n:?}; known: {}",
                                all.iter()
                                    .map(|m| m.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                    .collect::<Result<_>>()?
            };
            if from.is_some() && chosen.len() != 1 {
                bail!("--from goes with exactly one dataset name");
            }
            let opts = fetch::FetchOptions {
                dir: &dir,
                from: from.as_deref(),
                splits: &splits,
            };
            let mut failed = Vec::new();
            for m in chosen {
                if let Err(e) = fetch::fetch(m, &opts) {
                    eprintln!("{}: {e:#}", m.name);
                    failed.push(m.name.clone());
                }
            }
            if !failed.is_empty() {
                bail!("not fetched: {}", failed.join(", "));
            }
            Ok(())
        }
        Command::Convert {
            kind,
            input,
            output,
            image_size,
        } => {
            let input = dia_io::hub::resolve(&input)?;
            match kind {
                Kind::Encoder => convert::encoder(&input, &output),
                Kind::Ddpm => convert::ddpm(&input, &output, image_size),
            }
        }
        Command::MakeSample {
            source,
            out,
            train_per_class,
            test_per_class,
        } => sample::make_sample(&source, &out, train_per_class, test_per_class),
    }
}
