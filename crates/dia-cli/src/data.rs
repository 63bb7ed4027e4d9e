//! `dia data check` and `dia data preview`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use candle_core::Tensor;
use clap::Subcommand;
use dia_data::{check_folder, load_batch, open_idx, read_npz_split, Dataset, Split};
use dia_transforms::{BlurDissolver, Dissolve, Shift, SimclrAugmentation, K_SHIFT};
use rand::SeedableRng;

/// The embedded Fashion-MNIST sample, relative to the workspace root.
pub(crate) const SAMPLE_DIR: &str = "datasets/fashion-mnist-sample";

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
        DataCommand::Check { dir } => check(&dir),
        DataCommand::Preview {
            data,
            n,
            seed,
            output,
        } => preview(&data, n, seed, &output).map(|()| ExitCode::SUCCESS),
    }
}

fn is_idx_dir(dir: &Path) -> bool {
    ["train", "t10k"].iter().any(|p| {
        ["", ".gz"]
            .iter()
            .any(|ext| dir.join(format!("{p}-images-idx3-ubyte{ext}")).is_file())
    })
}

/// Opens the test split, else the train split, of an array dataset (IDX folder or .npz).
fn open_array(path: &Path, split: Split) -> dia_data::Result<Box<dyn Dataset>> {
    if path.extension().is_some_and(|e| e == "npz") {
        Ok(Box::new(read_npz_split(path, split, None, None)?))
    } else {
        Ok(Box::new(open_idx(path, split, None, None)?))
    }
}

fn print_counts(name: &str, ds: &dyn Dataset) {
    let (h, w) = ds.image_size();
    println!("  {name}: {} images of {w}x{h}", ds.len());
    let labels = ds.labels();
    for (c, class) in ds.classes().iter().enumerate() {
        println!(
            "    {class:<24} {:>7}",
            labels.iter().filter(|&&l| l == c).count()
        );
    }
}

fn check(path: &Path) -> Result<ExitCode> {
    let is_array = path.extension().is_some_and(|e| e == "npz") || is_idx_dir(path);
    if !is_array {
        let report = check_folder(path)?;
        println!("{report}");
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // Array files are validated entirely by the reader (header, sizes, labels).
    println!("{}", path.display());
    let mut failed = false;
    for split in [Split::Train, Split::Val, Split::Test] {
        match open_array(path, split) {
            Ok(ds) => print_counts(split.name(), ds.as_ref()),
            Err(dia_data::Error::Layout { msg, .. }) => {
                println!("  {}: absent ({msg})", split.name())
            }
            Err(e) => {
                println!("  {}: {e}", split.name());
                failed = true;
            }
        }
    }
    println!(
        "{}",
        if failed {
            "problems found"
        } else {
            "no problems found"
        }
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn preview(data: &Path, n: usize, seed: u64, output: &Path) -> Result<()> {
    if n == 0 {
        bail!("--n must be positive");
    }
    let ds: Box<dyn Dataset> = if data.extension().is_some_and(|e| e == "npz") || is_idx_dir(data) {
        open_array(data, Split::Test)?
    } else {
        Box::new(dia_data::FolderDataset::scan(
            &data.join("test"),
            None,
            Some((64, 64)),
        )?)
    };
    // Spread the rows over the classes: evenly spaced indices.
    let indices: Vec<usize> = (0..n.min(ds.len()))
        .map(|i| i * ds.len() / n.min(ds.len()))
        .collect();
    let x = load_batch(ds.as_ref(), indices)?.images;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut columns: Vec<Tensor> = vec![x.clone()];
    for shift in [Shift::Rotation, Shift::CutPerm] {
        for k in 1..K_SHIFT {
            columns.push(shift.apply(&x, k)?);
        }
    }
    columns.push(BlurDissolver::gaussian(7).dissolve(&x, &mut rng)?);
    columns.push(BlurDissolver::median(7).dissolve(&x, &mut rng)?);
    let aug = SimclrAugmentation::train();
    columns.push(aug.augment(&x, &mut rng)?);
    columns.push(aug.augment(&x, &mut rng)?);
    let img = dia_data::image_io::columns_grid(&columns.iter().collect::<Vec<_>>(), 256)?;
    dia_data::image_io::save_png(output, &img)?;
    println!(
        "wrote {} ({} images; columns: original, rotation 90/180/270, cutperm 1/2/3, gaussian 7, median 7, two SimCLR views)",
        output.display(),
        x.dim(0)?
    );
    Ok(())
}
