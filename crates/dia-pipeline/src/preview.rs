//! The transforms on real images, as one picture (`dia data preview`): per image the
//! original, its rotations and cut-permutations (spec §4), Gaussian and median blur (spec §3)
//! and two SimCLR views (spec §5.2).

use std::path::Path;

use candle_core::Tensor;
use dia_data::{load_batch, Dataset, Split};
use dia_transforms::{BlurDissolver, Dissolve, Shift, SimclrAugmentation, K_SHIFT};
use rand::SeedableRng;

use crate::error::{Error, Result};

/// What the columns of [`transforms_grid`] show.
pub const COLUMNS: &str =
    "original, rotation 90/180/270, cutperm 1/2/3, gaussian 7, median 7, two SimCLR views";

/// A grid of `n` test images of `data` (an IDX folder, a `.npz` or an image folder with a
/// `test/` split), one row each, spread over the dataset; `seed` seeds the augmentations.
/// Returns the picture and its number of rows.
pub fn transforms_grid(data: &Path, n: usize, seed: u64) -> Result<(image::RgbImage, usize)> {
    if n == 0 {
        return Err(Error::Config(
            "the number of images must be positive".into(),
        ));
    }
    let ds: Box<dyn Dataset> = if dia_data::is_array_dataset(data) {
        dia_data::open_array(data, Split::Test)?
    } else {
        Box::new(dia_data::FolderDataset::scan(
            &data.join("test"),
            None,
            Some((64, 64)),
        )?)
    };
    // Spread the rows over the classes: evenly spaced indices.
    let rows = n.min(ds.len());
    if rows == 0 {
        return Err(Error::Config(format!("{}: no test images", data.display())));
    }
    let indices: Vec<usize> = (0..rows).map(|i| i * ds.len() / rows).collect();
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
    Ok((img, rows))
}
