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

/// The images of `ds` whose class is one of `classes` (names or indices), in order; every
/// image when `classes` is empty. The one normal-class selection of the project: encoder
/// training, DDPM training and evaluation all select their normal images here.
///
/// ```
/// use dia_data::{normal_indices, ArrayDataset};
/// let classes = vec!["a".to_string(), "b".to_string()];
/// let ds = ArrayDataset::new("d", vec![0u8; 16], (4, 2, 2, 1), vec![0, 1, 0, 1], classes, None)?;
/// assert_eq!(normal_indices(&ds, &["b".into()])?, [1, 3]);
/// assert_eq!(normal_indices(&ds, &[])?, [0, 1, 2, 3]);
/// assert!(normal_indices(&ds, &["c".into()]).is_err());
/// # Ok::<(), dia_data::Error>(())
/// ```
pub fn normal_indices(ds: &dyn Dataset, classes: &[String]) -> Result<Vec<usize>> {
    if classes.is_empty() {
        return Ok((0..ds.len()).collect());
    }
    let wanted: Vec<usize> = classes
        .iter()
        .map(|c| resolve_class(ds.classes(), c))
        .collect::<Result<_>>()?;
    let idx: Vec<usize> = (0..ds.len())
        .filter(|&i| wanted.contains(&ds.label(i)))
        .collect();
    if idx.is_empty() {
        return Err(Error::Invalid(format!(
            "the normal class(es) {classes:?} have no training image"
        )));
    }
    Ok(idx)
}

/// Builds the training subset (normal images only) and the labelled test subset.
pub fn protocol_subsets(
    protocol: &Protocol,
    train: &dyn Dataset,
    test: &dyn Dataset,
) -> Result<(Subset, Subset)> {
    let train_labels = train.labels();
    let train_idx = match protocol {
        Protocol::OneClass(names) if names.is_empty() => {
            return Err(Error::Invalid(
                "one-class protocol without a normal class".into(),
            ))
        }
        Protocol::OneClass(names) => normal_indices(train, names)?,
        Protocol::MultiClass => (0..train.len()).collect(),
    };
    let mut normal_train = vec![false; train.classes().len()];
    for &i in &train_idx {
        normal_train[train_labels[i]] = true;
    }
    let normal_names: Vec<&String> = train
        .classes()
        .iter()
        .zip(&normal_train)
        .filter_map(|(n, &keep)| keep.then_some(n))
        .collect();
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
