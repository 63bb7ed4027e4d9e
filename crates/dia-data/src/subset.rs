//! The evaluation protocols (spec §6): which training images are normal, and which test images
//! count as normal or anomalous.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Indices into a dataset with a normal / anomalous flag per index.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Subset {
    /// Sample indices.
    pub indices: Vec<usize>,
    /// `normal[i]` is true when `indices[i]` is a normal sample.
    pub normal: Vec<bool>,
}

impl Subset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
    /// Number of normal samples.
    pub fn n_normal(&self) -> usize {
        self.normal.iter().filter(|&&n| n).count()
    }
}

/// How normal data is defined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Train on the listed classes (by name or index); every other test class is anomalous.
    OneClass(Vec<String>),
    /// Every training class is normal; test images of classes absent from training are
    /// anomalous.
    MultiClass,
}

/// Resolves a class given by name or by index.
///
/// ```
/// let classes = vec!["0_normal".to_string(), "1_abnormal".to_string()];
/// assert_eq!(dia_data::resolve_class(&classes, "0_normal")?, 0);
/// assert_eq!(dia_data::resolve_class(&classes, "1")?, 1);
/// assert!(dia_data::resolve_class(&classes, "2").is_err());
/// # Ok::<(), dia_data::Error>(())
/// ```
pub fn resolve_class(classes: &[String], class: &str) -> Result<usize> {
    if let Some(i) = classes.iter().position(|c| c == class) {
        return Ok(i);
    }
    match class.parse::<usize>() {
        Ok(i) if i < classes.len() => Ok(i),
        _ => Err(Error::Invalid(format!(
            "unknown class {class:?}; the dataset has {classes:?} (names or indices 0..{})",
            classes.len()
        ))),
    }
}

/// Builds the training subset (normal images only) and the labelled test subset.
pub fn protocol_subsets(
    protocol: &Protocol,
    train: &dyn Dataset,
    test: &dyn Dataset,
) -> Result<(Subset, Subset)> {
    let train_labels = train.labels();
    let normal_train: Vec<bool> = match protocol {
        Protocol::OneClass(names) => {
            if names.is_empty() {
                return Err(Error::Invalid(
                    "one-class protocol without a normal class".into(),
                ));
            }
            let normal: Vec<usize> = names
                .iter()
                .map(|n| resolve_class(train.classes(), n))
                .collect::<Result<_>>()?;
            (0..train.classes().len())
                .map(|c| normal.contains(&c))
                .collect()
        }
        Protocol::MultiClass => (0..train.classes().len())
            .map(|c| train_labels.contains(&c))
            .collect(),
    };
    let normal_names: Vec<&String> = train
        .classes()
        .iter()
        .zip(&normal_train)
        .filter_map(|(n, &keep)| keep.then_some(n))
        .collect();
    let train_idx: Vec<usize> = (0..train.len())
        .filter(|&i| normal_train[train_labels[i]])
        .collect();
    if train_idx.is_empty() {
        return Err(Error::Invalid(format!(
            "the normal class(es) {normal_names:?} have no training image"
        )));
    }
    // Test classes are matched to training classes by name, so the two splits may list their
    // classes in different orders.
    let test_normal_class: Vec<bool> = test
        .classes()
        .iter()
        .map(|c| normal_names.contains(&c))
        .collect();
    let test_subset = Subset {
        indices: (0..test.len()).collect(),
        normal: (0..test.len())
            .map(|i| test_normal_class[test.label(i)])
            .collect(),
    };
    let train_subset = Subset {
        normal: vec![true; train_idx.len()],
        indices: train_idx,
    };
    Ok((train_subset, test_subset))
}
