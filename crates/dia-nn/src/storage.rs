//! Host buffers: borrowing the f32 data of a contiguous CPU tensor without copying it, and
//! zeroed buffers written in parallel.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

/// Calls `f` with the f32 values of `t`, which must be a contiguous f32 tensor on the CPU.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!(
            "expected a contiguous tensor, got strides {:?}",
            layout.stride()
        )
    };
    match &*storage {
        Storage::Cpu(candle_core::CpuStorage::F32(v)) => Ok(f(&v[start..end])),
        _ => bail!("expected an f32 tensor on the CPU"),
    }
}

/// The f32 values of a contiguous CPU storage, as custom ops receive it; `what` names the
/// operand in errors.
pub(crate) fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: expected f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

/// (N, C, H·W) of a 4-D shape; `what` names the op in the error.
pub(crate) fn nchw(dims: &[usize], what: &str) -> Result<(usize, usize, usize)> {
    match *dims {
        [n, c, h, w] => Ok((n, c, h * w)),
        ref d => bail!("{what}: expected (N, C, H, W), got {d:?}"),
    }
}

/// A zeroed buffer, written in parallel: the first touch of a large buffer is page faults and
/// zeroing, which a plain `vec![0.0; n]` does on one thread while the other cores wait.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0.0f32, n));
    v
}
