//! Helpers shared by the dia-contrastive tests.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::sync::Arc;

use dia_data::{DataSource, Dataset, Split};

/// The training split of the embedded Fashion-MNIST sample at 32 × 32.
pub fn sample_train() -> Arc<dyn Dataset> {
    let src = DataSource::Idx {
        dir: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/fashion-mnist-sample"
        )
        .into(),
        classes: None,
    };
    src.open(Split::Train, Some((32, 32))).unwrap()
}
