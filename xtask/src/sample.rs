//! `cargo xtask make-sample`: rebuilds the embedded Fashion-MNIST sample in `datasets/` from
//! the Debian package `dataset-fashion-mnist`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dia_data::{read_idx, write_idx, IdxArray, FASHION_MNIST_CLASSES};
use dia_io::atomic::write_atomic;
use sha2::{Digest, Sha256};

pub fn sha256(path: &Path) -> Result<String> {
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

pub fn make_sample(source: &Path, out: &Path, train_n: usize, test_n: usize) -> Result<()> {
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
