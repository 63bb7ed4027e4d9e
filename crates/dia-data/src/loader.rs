//! [`BatchLoader`]: seeded shuffling, fixed-size batches, and decoding in parallel (rayon) on a
//! background thread while the previous batch trains.
//!
//! The order of epoch `e` is a ChaCha8 permutation seeded by `(seed, e)`, so a run resumed at
//! epoch `e` sees the same batches as an uninterrupted one.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// One batch: images (B, 3, H, W) in [0, 1] on the CPU, their labels and dataset indices.
#[derive(Debug)]
pub struct Batch {
    /// The images.
    pub images: Tensor,
    /// Class labels.
    pub labels: Vec<usize>,
    /// Indices into the dataset.
    pub indices: Vec<usize>,
}

/// Iterates a dataset (or a subset of it) in batches.
///
/// ```
/// use std::sync::Arc;
/// use dia_data::{ArrayDataset, BatchLoader};
/// let ds = ArrayDataset::new("toy", vec![7u8; 5 * 4], (5, 2, 2, 1), vec![0; 5], vec!["a".into()], None)?;
/// let loader = BatchLoader::new(Arc::new(ds), (0..5).collect(), 2)?.shuffle(42);
/// let sizes: Vec<usize> = loader.epoch(0).map(|b| b.map(|b| b.labels.len())).collect::<Result<_, _>>()?;
/// assert_eq!(sizes, [2, 2, 1]);
/// # Ok::<(), dia_data::Error>(())
/// ```
#[derive(Clone)]
pub struct BatchLoader {
    dataset: Arc<dyn Dataset>,
    indices: Vec<usize>,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    prefetch: usize,
}

impl BatchLoader {
    /// A loader over `indices` of `dataset` in batches of `batch_size`, in order, keeping the
    /// last partial batch (the reference's `drop_last=False`).
    pub fn new(dataset: Arc<dyn Dataset>, indices: Vec<usize>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be positive".into()));
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= dataset.len()) {
            return Err(Error::Invalid(format!(
                "index {i} out of range for a dataset of {} samples",
                dataset.len()
            )));
        }
        Ok(Self {
            dataset,
            indices,
            batch_size,
            seed: None,
            drop_last: false,
            prefetch: 2,
        })
    }

    /// Shuffles every epoch with a generator seeded by `(seed, epoch)`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Drops the last batch when it is smaller than the batch size.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Number of batches decoded ahead (at least 1).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.indices.len() / self.batch_size
        } else {
            self.indices.len().div_ceil(self.batch_size)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.indices.clone();
        if let Some(seed) = self.seed {
            // Mix the epoch into the seed so each epoch has its own permutation.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches of `epoch`, decoded on a background thread.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let order = self.order(epoch);
        let mut chunks: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.drop_last && chunks.last().is_some_and(|c| c.len() < self.batch_size) {
            chunks.pop();
        }
        let (tx, rx) = sync_channel(self.prefetch);
        let dataset = Arc::clone(&self.dataset);
        let worker = std::thread::spawn(move || {
            for chunk in chunks {
                let batch = load_batch(dataset.as_ref(), chunk);
                let failed = batch.is_err();
                // A closed channel means the consumer stopped: stop decoding.
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        Batches {
            rx,
            worker: Some(worker),
        }
    }
}

/// Decodes the samples `indices` in parallel into one batch.
pub fn load_batch(dataset: &dyn Dataset, indices: Vec<usize>) -> Result<Batch> {
    let (h, w) = dataset.image_size();
    let images: Vec<Vec<f32>> = indices
        .par_iter()
        .map(|&i| dataset.load(i))
        .collect::<Result<_>>()?;
    let per = 3 * h * w;
    let mut flat = Vec::with_capacity(per * images.len());
    for (img, &i) in images.iter().zip(&indices) {
        if img.len() != per {
            return Err(Error::Invalid(format!(
                "{}: decoded to {} values, expected 3x{h}x{w}",
                dataset.source(i),
                img.len()
            )));
        }
        flat.extend_from_slice(img);
    }
    // Decoded in host memory: the seeded transforms work there; trainers move batches to
    // their device once.
    let images = Tensor::from_vec(flat, (indices.len(), 3, h, w), &Device::Cpu)?;
    Ok(Batch {
        images,
        labels: indices.iter().map(|&i| dataset.label(i)).collect(),
        indices,
    })
}

/// The batches of one epoch; see [`BatchLoader::epoch`].
pub struct Batches {
    rx: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        match self.rx.recv() {
            Ok(b) => Some(b),
            Err(_) => {
                if let Some(w) = self.worker.take() {
                    if w.join().is_err() {
                        return Some(Err(Error::Invalid(
                            "the batch decoding thread panicked".into(),
                        )));
                    }
                }
                None
            }
        }
    }
}
