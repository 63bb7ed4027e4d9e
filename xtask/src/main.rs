//! `cargo xtask`: project automation that is not part of the `dia` tool.
//!
//! - `make-sample`: rebuilds the embedded Fashion-MNIST sample in `datasets/` from the Debian
//!   package `dataset-fashion-mnist`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;

use dia_data::atomic::write_atomic;
use dia_data::{read_idx, write_idx, IdxArray, FASHION_MNIST_CLASSES};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Project automation for dia")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The first `per_class` images of each class, in file order.
fn first_per_class(
    images: &IdxArray,
    labels: &IdxArray,
    per_class: usize,
) -> Result<(IdxArray, IdxArray)> {
    let (n, h, w) = match images.dims[..] {
        [n, h, w] => (n, h, w),
        _ => bail!("unexpected image dims {:?}", images.dims),
    };
    let mut taken = [0usize; 256];
    let (mut img, mut lab) = (Vec::new(), Vec::new());
    for i in 0..n {
        let l = labels.data[i];
        if taken[l as usize] < per_class {
            taken[l as usize] += 1;
            img.extend_from_slice(&images.data[i * h * w..(i + 1) * h * w]);
            lab.push(l);
        }
    }
    let count = lab.len();
    Ok((
        IdxArray {
            dims: vec![count, h, w],
            data: img,
        },
        IdxArray {
            dims: vec![count],
            data: lab,
        },
    ))
}

fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name}(.gz) not found in {} (install it with `apt-get install dataset-fashion-mnist`)",
                dir.display()
            )
        })
}

fn make_sample(source: &Path, out: &Path, train_n: usize, test_n: usize) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (split, per_class) in [("train", train_n), ("t10k", test_n)] {
        let img_path = find(source, &format!("{split}-images-idx3-ubyte"))?;
        let lab_path = find(source, &format!("{split}-labels-idx1-ubyte"))?;
        let (img, lab) = first_per_class(&read_idx(&img_path)?, &read_idx(&lab_path)?, per_class)?;
        println!("{}  sha256 {}", img_path.display(), sha256(&img_path)?);
        println!("{}  sha256 {}", lab_path.display(), sha256(&lab_path)?);
        for (name, arr) in [("images-idx3", &img), ("labels-idx1", &lab)] {
            let dst = out.join(format!("{split}-{name}-ubyte.gz"));
            write_idx(&dst, arr)?;
            println!(
                "wrote {} ({} entries, sha256 {})",
                dst.display(),
                arr.dims[0],
                sha256(&dst)?
            );
        }
    }
    let classes = out.join("classes.txt");
    let text = FASHION_MNIST_CLASSES.join("\n") + "\n";
    write_atomic(&classes, |f| f.write_all(text.as_bytes()))?;
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::MakeSample {
            source,
            out,
            train_per_class,
            test_per_class,
        } => make_sample(&source, &out, train_per_class, test_per_class),
    }
}
