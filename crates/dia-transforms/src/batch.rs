//! [`ImageBatch`]: a batch of images in host memory, the working form of every transform.
//!
//! The transforms of this crate are pixel loops (rotations, blurs, colour space conversions,
//! grid sampling) that candle has no fused kernels for. They run on a plain `Vec<f32>` in NCHW
//! order, parallel over images with rayon, and convert from and to [`Tensor`] at the API
//! boundary, keeping the device of the input.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::error::{invalid, Error, Result};

/// A batch of `n` images with `c` channels of `h`×`w` pixels, stored as f32 in NCHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    data: Vec<f32>,
    dims: (usize, usize, usize, usize),
}

impl ImageBatch {
    /// Wraps `data` (NCHW) with the given dimensions.
    pub fn new(data: Vec<f32>, dims: (usize, usize, usize, usize)) -> Result<Self> {
        let (n, c, h, w) = dims;
        if data.len() != n * c * h * w {
            return Err(invalid(
                "ImageBatch::new",
                format!(
                    "{} values do not fill dims ({n}, {c}, {h}, {w})",
                    data.len()
                ),
            ));
        }
        Ok(Self { data, dims })
    }

    /// A batch of zeros.
    pub fn zeros(dims: (usize, usize, usize, usize)) -> Self {
        let (n, c, h, w) = dims;
        Self {
            data: vec![0.0; n * c * h * w],
            dims,
        }
    }

    /// Copies a rank-4 tensor (any float dtype, any device) into host memory.
    pub fn from_tensor(x: &Tensor) -> Result<Self> {
        let dims = match x.dims() {
            &[n, c, h, w] => (n, c, h, w),
            other => return Err(Error::NotNchw(other.to_vec())),
        };
        // The transforms are host pixel loops (module doc), whatever the input's device.
        let data = x
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_device(&Device::Cpu)?
            .to_vec1::<f32>()?;
        Ok(Self { data, dims })
    }

    /// Copies the batch into a tensor of shape (N, C, H, W) on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.data, self.dims, device)?)
    }

    /// Consumes the batch into a tensor without copying on the CPU.
    pub fn into_tensor(self, device: &Device) -> Result<Tensor> {
        // `from_vec` takes the host buffer without a copy; then one move to `device`.
        Ok(Tensor::from_vec(self.data, self.dims, &Device::Cpu)?.to_device(device)?)
    }

    /// (N, C, H, W).
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        self.dims
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.dims.0
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.dims.0 == 0
    }

    /// Values per image (C·H·W).
    pub fn image_len(&self) -> usize {
        let (_, c, h, w) = self.dims;
        c * h * w
    }

    /// All values, NCHW.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All values, NCHW, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, NCHW.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Image `i` as a CHW slice.
    pub fn image(&self, i: usize) -> &[f32] {
        let len = self.image_len();
        &self.data[i * len..(i + 1) * len]
    }

    /// Builds a new batch of images of `out_hw` from this one: `f(i, src, dst)` writes image
    /// `i` (CHW, same channel count) into `dst`. Runs in parallel over images.
    pub fn map_images<F>(&self, out_hw: (usize, usize), f: F) -> ImageBatch
    where
        F: Fn(usize, &[f32], &mut [f32]) + Sync,
    {
        let (n, c, h, w) = self.dims;
        let out_len = c * out_hw.0 * out_hw.1;
        let mut out = vec![0.0f32; n * out_len];
        if out_len > 0 {
            let in_len = c * h * w;
            out.par_chunks_mut(out_len)
                .enumerate()
                .for_each(|(i, dst)| f(i, &self.data[i * in_len..(i + 1) * in_len], dst));
        }
        ImageBatch {
            data: out,
            dims: (n, c, out_hw.0, out_hw.1),
        }
    }

    /// Applies `f(i, image)` to every image in place, in parallel.
    pub fn for_each_image_mut<F>(&mut self, f: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let len = self.image_len();
        if len == 0 {
            return;
        }
        self.data
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, img)| f(i, img));
    }
}

/// Runs a host-side transform on a tensor batch and returns the result on the input's device.
pub(crate) fn on_host(
    x: &Tensor,
    f: impl FnOnce(ImageBatch) -> Result<ImageBatch>,
) -> Result<Tensor> {
    let out = f(ImageBatch::from_tensor(x)?)?;
    out.into_tensor(x.device())
}
