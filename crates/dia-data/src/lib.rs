//! Datasets for DIA ("Dissolving Is Amplifying", ECCV 2024) and CSI anomaly detection.
//!
//! Every dataset decodes to f32 CHW images with 3 channels in [0, 1] (grey is copied to RGB,
//! spec §5.1, §7). What is here:
//! - [`FolderDataset`]: `ROOT/{train,test}/<class>/*.{png,jpg,jpeg}` with the reference's
//!   `0_normal` / `1_abnormal` convention or an explicit [`ClassMap`];
//! - [`read_idx`] / [`write_idx`] for MNIST and Fashion-MNIST, [`read_npz_split`] for MedMNIST,
//!   both served as an [`ArrayDataset`];
//! - the protocols of spec §6 ([`protocol_subsets`]: one-class, multi-class);
//! - seeded stratified splits and split files ([`stratified_split`], [`write_split_file`]);
//! - [`BatchLoader`]: seeded shuffling and parallel decoding ahead of training;
//! - [`check_folder`], the library behind `dia data check`;
//! - [`DataSource`], the `data:` section of an experiment config.
//!
//! ```
//! use std::sync::Arc;
//! use dia_data::{protocol_subsets, ArrayDataset, BatchLoader, Protocol};
//!
//! // Four 2x2 grey images, classes "a" (normal) and "b".
//! let classes = vec!["a".to_string(), "b".to_string()];
//! let train = ArrayDataset::new("train", vec![0u8; 16], (4, 2, 2, 1), vec![0, 1, 0, 1], classes.clone(), None)?;
//! let test = ArrayDataset::new("test", vec![255u8; 8], (2, 2, 2, 1), vec![1, 0], classes, None)?;
//! let (normal_train, labelled_test) = protocol_subsets(&Protocol::OneClass(vec!["a".into()]), &train, &test)?;
//! assert_eq!(normal_train.indices, [0, 2]);
//! assert_eq!(labelled_test.normal, [false, true]);
//!
//! let loader = BatchLoader::new(Arc::new(train), normal_train.indices, 2)?.shuffle(0);
//! for batch in loader.epoch(0) {
//!     assert_eq!(batch?.images.dims(), [2, 3, 2, 2]);
//! }
//! # Ok::<(), dia_data::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod dataset;
pub mod error;
pub mod folder;
pub mod idx;
pub mod image_io;
mod input;
mod jpeg;
pub mod loader;
pub mod npy;
pub mod npz;
pub mod source;
pub mod split;
pub mod subset;

pub use check::{check_dataset, check_folder, CheckReport, DatasetCheck};
pub use dataset::{ArrayDataset, Dataset, TensorDataset};
pub use error::{Error, Result};
pub use folder::{find_images, ClassMap, ClassSpec, FolderDataset};
pub use idx::{read_idx, write_idx, IdxArray, FASHION_MNIST_CLASSES};
pub use input::{load_images, MAX_IMAGE_SIZE};
pub use loader::{load_batch, Batch, BatchLoader, Batches};
pub use npz::read_npz_split;
pub use source::{is_array_dataset, open_array, open_idx, DataSource};
pub use split::{read_split_file, stratified_split, write_split_file, Split, SplitRecipe};
pub use subset::{normal_indices, protocol_subsets, resolve_class, Protocol, Subset};

// Atomic writes and run-directory chores live in dia-io; re-exported under their old paths.
pub use dia_io::{atomic, run};
