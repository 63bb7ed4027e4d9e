//! The reference's protocol, kept apart and labelled (issue #16, spec §10.6): the reference
//! evaluates on the *test* split every few epochs during training and reports the best of
//! those numbers (`[Best CSI …]`, `best_CSI.model`). That is model selection on the test set,
//! so its number is optimistic. A cell of an experiment with `eval.every_epochs: N` evaluates
//! its checkpoint after every N-th epoch with the final evaluation's settings, into
//! `eval/epochs/epoch-E/`, and records `epochs.csv` (epoch, AUROC); the reports show the
//! honest number (the last epoch) beside the reference protocol's (the best epoch).

use std::path::{Path, PathBuf};

use crate::error::Result;

/// The per-epoch AUROCs of a cell.
pub const EPOCHS_FILE: &str = "epochs.csv";

/// The folder of the evaluation after epoch `epoch`.
pub fn epoch_eval_dir(cell: &Path, epoch: usize) -> PathBuf {
    cell.join("eval")
        .join("epochs")
        .join(format!("epoch-{epoch:04}"))
}

/// The reference protocol's number from a recorded `(epoch, AUROC)` list: the best AUROC and
/// its epoch (the earliest on ties); `None` for an empty list.
///
/// ```
/// use dia_pipeline::experiment::reference_protocol;
/// assert_eq!(reference_protocol(&[(5, 0.70), (10, 0.74), (15, 0.74), (20, 0.72)]),
///            Some((10, 0.74)));
/// ```
pub fn reference_protocol(aurocs: &[(usize, f64)]) -> Option<(usize, f64)> {
    aurocs
        .iter()
        .copied()
        .filter(|(_, a)| a.is_finite())
        .fold(None, |best, (e, a)| match best {
            Some((_, b)) if b >= a => best,
            _ => Some((e, a)),
        })
}

/// Writes `epochs.csv` of a cell (atomically).
pub fn write_epochs(cell: &Path, aurocs: &[(usize, f64)]) -> Result<()> {
    Ok(dia_io::csv::write_csv(
        &cell.join(EPOCHS_FILE),
        &["epoch", "auroc"],
        aurocs.iter().map(|(e, a)| [e.to_string(), a.to_string()]),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_epoch_is_the_earliest_maximum_and_skips_nan() {
        let l = [(2, 0.6), (4, f64::NAN), (6, 0.8), (8, 0.8), (10, 0.7)];
        assert_eq!(reference_protocol(&l), Some((6, 0.8)));
        assert_eq!(reference_protocol(&[]), None);
        assert_eq!(reference_protocol(&[(3, f64::NAN)]), None);
        // The last epoch is the honest number; the best is never below it.
        let last = l.last().unwrap().1;
        assert!(reference_protocol(&l).unwrap().1 >= last);
    }
}
