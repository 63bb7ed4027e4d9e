//! The [`Dataset`] trait and [`ArrayDataset`], the in-memory dataset behind IDX and NPZ files.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::image_io::{rgb_from_hwc, rgb_to_chw};

/// A labelled image dataset: every sample decodes to f32 CHW, 3 channels, values in [0, 1],
/// at [`Dataset::image_size`].
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names, indexed by label.
    fn classes(&self) -> &[String];

    /// The label (class index) of sample `i`.
    fn label(&self, i: usize) -> usize;

    /// The (H, W) of every decoded sample.
    fn image_size(&self) -> (usize, usize);

    /// Decodes sample `i` to f32 CHW (3 × H × W) in [0, 1].
    fn load(&self, i: usize) -> Result<Vec<f32>>;

    /// Where sample `i` comes from: a file path, or `file[index]` for array files.
    fn source(&self, i: usize) -> String;

    /// Decodes sample `i` at the resolution of its file, whatever size the dataset was opened
    /// with: f32 CHW (3 × H × W) in [0, 1] and its (H, W). The DDPM trains on these, resized
    /// as a tensor without antialiasing, as the reference does (spec §2.2). By default, what
    /// [`load`](Self::load) gives.
    fn load_native(&self, i: usize) -> Result<(Vec<f32>, (usize, usize))> {
        Ok((self.load(i)?, self.image_size()))
    }

    /// All labels.
    fn labels(&self) -> Vec<usize> {
        (0..self.len()).map(|i| self.label(i)).collect()
    }
}

/// Images held in memory as 8-bit HWC arrays (1 or 3 channels), as read from IDX or NPZ files.
///
/// ```
/// use dia_data::{ArrayDataset, Dataset};
/// let pixels = vec![0u8, 255, 128, 64]; // one 2x2 grey image
/// let ds = ArrayDataset::new("toy", pixels, (1, 2, 2, 1), vec![0], vec!["a".into()], None)?;
/// let x = ds.load(0)?; // 3 x 2 x 2, grey copied to RGB
/// assert_eq!(x.len(), 12);
/// assert_eq!(x[1], 1.0);
/// assert_eq!(x[5], 1.0);
/// # Ok::<(), dia_data::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ArrayDataset {
    name: PathBuf,
    pixels: Vec<u8>,
    dims: (usize, usize, usize, usize),
    labels: Vec<usize>,
    classes: Vec<String>,
    size: Option<(usize, usize)>,
}

impl ArrayDataset {
    /// `pixels` is N×H×W×C (C = 1 or 3), `labels` has N entries below `classes.len()`;
    /// `size` resizes every image (triangle filter) when set.
    pub fn new(
        name: impl Into<PathBuf>,
        pixels: Vec<u8>,
        dims: (usize, usize, usize, usize),
        labels: Vec<usize>,
        classes: Vec<String>,
        size: Option<(usize, usize)>,
    ) -> Result<Self> {
        let name = name.into();
        let (n, h, w, c) = dims;
        let bad = |msg: String| Error::Format {
            path: name.clone(),
            msg,
        };
        if c != 1 && c != 3 {
            return Err(bad(format!("images with {c} channels (expected 1 or 3)")));
        }
        if pixels.len() != n * h * w * c {
            return Err(bad(format!(
                "{} pixel values do not fill {n} images of {h}x{w}x{c}",
                pixels.len()
            )));
        }
        if labels.len() != n {
            return Err(bad(format!("{} labels for {n} images", labels.len())));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= classes.len()) {
            return Err(bad(format!(
                "label {l} but only {} class names",
                classes.len()
            )));
        }
        if h == 0 || w == 0 || size.is_some_and(|(a, b)| a == 0 || b == 0) {
            return Err(bad("empty image size".into()));
        }
        Ok(Self {
            name,
            pixels,
            dims,
            labels,
            classes,
            size,
        })
    }

    /// The same images resized to `size` on load.
    pub fn with_size(mut self, size: Option<(usize, usize)>) -> Self {
        self.size = size;
        self
    }

    /// The same images with other class names (same count).
    pub fn with_classes(mut self, classes: Vec<String>) -> Result<Self> {
        if classes.len() < self.labels.iter().max().map_or(0, |m| m + 1) {
            return Err(Error::Invalid(format!(
                "{} class names for labels up to {}",
                classes.len(),
                self.labels.iter().max().unwrap_or(&0)
            )));
        }
        self.classes = classes;
        Ok(self)
    }

    /// The raw HWC pixels of image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let (_, h, w, c) = self.dims;
        &self.pixels[i * h * w * c..(i + 1) * h * w * c]
    }

    /// (N, H, W, C) of the stored arrays.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        self.dims
    }
}

impl Dataset for ArrayDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }
    fn image_size(&self) -> (usize, usize) {
        self.size.unwrap_or((self.dims.1, self.dims.2))
    }
    fn load(&self, i: usize) -> Result<Vec<f32>> {
        let (_, h, w, c) = self.dims;
        let img = rgb_from_hwc(self.pixels(i), h, w, c);
        Ok(rgb_to_chw(&img, self.size))
    }
    fn load_native(&self, i: usize) -> Result<(Vec<f32>, (usize, usize))> {
        let (_, h, w, c) = self.dims;
        let img = rgb_from_hwc(self.pixels(i), h, w, c);
        Ok((rgb_to_chw(&img, None), (h, w)))
    }
    fn source(&self, i: usize) -> String {
        format!("{}[{i}]", self.name.display())
    }
}

/// Images already decoded to f32 CHW in [0, 1] (e.g. a `.npy` batch), all of one class
/// `"images"`: lets a loaded batch go through the code paths that take a [`Dataset`].
#[derive(Clone, Debug)]
pub struct TensorDataset {
    data: Vec<f32>,
    dims: (usize, usize, usize),
    sources: Vec<String>,
    classes: Vec<String>,
}

impl TensorDataset {
    /// From a (N, 3, H, W) tensor and one source name per image.
    pub fn new(images: &candle_core::Tensor, sources: Vec<String>) -> Result<Self> {
        let bad = |msg: String| Error::Format {
            path: PathBuf::from(sources.first().cloned().unwrap_or_default()),
            msg,
        };
        let (n, c, h, w) = images
            .dims4()
            .map_err(|_| bad(format!("expected (N, 3, H, W), got {:?}", images.dims())))?;
        if c != 3 || sources.len() != n {
            return Err(bad(format!(
                "expected (N, 3, H, W) with one source per image, got {:?} and {} sources",
                images.dims(),
                sources.len()
            )));
        }
        let data = images
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            data,
            dims: (c, h, w),
            sources,
            classes: vec!["images".into()],
        })
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.sources.len()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, _i: usize) -> usize {
        0
    }
    fn image_size(&self) -> (usize, usize) {
        (self.dims.1, self.dims.2)
    }
    fn load(&self, i: usize) -> Result<Vec<f32>> {
        let size = self.dims.0 * self.dims.1 * self.dims.2;
        Ok(self.data[i * size..(i + 1) * size].to_vec())
    }
    fn source(&self, i: usize) -> String {
        self.sources[i].clone()
    }
}
