//! The one dispatch point of dia-nn: which implementation of an op runs (issue #14).
//!
//! Every op of this crate has two implementations:
//! - **fast**: a candle custom op with its own CPU forward and backward (Winograd, AVX-512
//!   tiles, fused batch norm, …). It exists for `f32` tensors on the CPU only. Inside it, the
//!   convolution chooses among Winograd, the AVX-512 tiles and im2col + gemm (`conv`'s one
//!   `Kernel::choose`), as far as the policy allows ([`KernelPolicy::NoWinograd`],
//!   [`KernelPolicy::Gemm`] hold it to the slower ones, to compare them).
//! - **portable**: the same op written with candle's own tensor ops, differentiated by
//!   candle's autograd, with PyTorch's backward semantics kept where candle's differ (ReLU's
//!   gradient at 0, the max pool's tie rule). This is what runs on a GPU.
//!
//! [`use_fast`] decides, in one place, for every op: the fast path when the policy is
//! [`KernelPolicy::Fast`] and every operand is an `f32` CPU tensor, the portable path
//! otherwise. The policy is process-wide ([`set_kernel_policy`], e.g. from `DIA_KERNELS`
//! through [`KernelPolicy::from_env`] in the `dia` binary) and can be overridden for the
//! current thread ([`with_kernel_policy`]), which is how the tests run the exact code a GPU
//! runs on the CPU and compare it with the fast path, op by op.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use dia_nn::{with_kernel_policy, KernelPolicy};
//! let a = Tensor::new(&[1f32, -2., 3.], &Device::Cpu)?;
//! let b = Tensor::new(&[-2f32, 1., 1.], &Device::Cpu)?;
//! let fast = dia_nn::add_relu(&a, &b)?;
//! let portable = with_kernel_policy(KernelPolicy::Portable, || dia_nn::add_relu(&a, &b))?;
//! assert_eq!(fast.to_vec1::<f32>()?, portable.to_vec1::<f32>()?);
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Tensor};

/// Which implementation of the dia-nn ops to use where several exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelPolicy {
    /// The fast custom ops where they exist (CPU, f32), the portable ops elsewhere; every CPU
    /// kernel the CPU and the shape allow.
    #[default]
    Fast,
    /// As [`KernelPolicy::Fast`] without the Winograd convolutions.
    NoWinograd,
    /// The fast custom ops on im2col + gemm only: no AVX-512 tiles and no Winograd (what a
    /// CPU without AVX-512 runs).
    Gemm,
    /// The portable ops everywhere: what a GPU runs, on any device.
    Portable,
}

/// The environment variable read by [`KernelPolicy::from_env`].
pub const KERNELS_ENV: &str = "DIA_KERNELS";

/// A `DIA_KERNELS` value that names no policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kernel policy {:?} (expected fast, no-winograd, gemm or portable)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for KernelPolicy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fast" | "" => Ok(Self::Fast),
            "no-winograd" => Ok(Self::NoWinograd),
            "gemm" => Ok(Self::Gemm),
            "portable" => Ok(Self::Portable),
            _ => Err(UnknownPolicy(s.to_string())),
        }
    }
}

impl fmt::Display for KernelPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fast => "fast",
            Self::NoWinograd => "no-winograd",
            Self::Gemm => "gemm",
            Self::Portable => "portable",
        })
    }
}

impl KernelPolicy {
    /// The policy named by `DIA_KERNELS` (`fast`, the default, `no-winograd`, `gemm` or
    /// `portable`); without it, the older switches `DIA_NO_AVX512=1` (→ `gemm`) and
    /// `DIA_NO_WINOGRAD=1` (→ `no-winograd`). The library never reads the environment by
    /// itself: a program calls this and [`set_kernel_policy`].
    pub fn from_env() -> Result<Self, UnknownPolicy> {
        if let Ok(v) = std::env::var(KERNELS_ENV) {
            return v.parse();
        }
        let on = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        Ok(if on("DIA_NO_AVX512") {
            Self::Gemm
        } else if on("DIA_NO_WINOGRAD") {
            Self::NoWinograd
        } else {
            Self::Fast
        })
    }

    const ALL: [KernelPolicy; 4] = [Self::Fast, Self::NoWinograd, Self::Gemm, Self::Portable];

    fn code(self) -> u8 {
        Self::ALL.iter().position(|&p| p == self).unwrap_or(0) as u8
    }

    fn from_code(c: u8) -> Self {
        Self::ALL.get(c as usize).copied().unwrap_or(Self::Fast)
    }
}

static GLOBAL: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static SCOPED: Cell<Option<KernelPolicy>> = const { Cell::new(None) };
}

/// Sets the process-wide policy (threads inside [`with_kernel_policy`] keep their own).
pub fn set_kernel_policy(policy: KernelPolicy) {
    GLOBAL.store(policy.code(), Ordering::Relaxed);
}

/// The policy in force on this thread.
pub fn kernel_policy() -> KernelPolicy {
    SCOPED
        .with(Cell::get)
        .unwrap_or_else(|| KernelPolicy::from_code(GLOBAL.load(Ordering::Relaxed)))
}

/// Runs `f` with `policy` in force on the current thread (restored afterwards, also on a
/// panic). Ops dispatch on the thread that calls them, and candle runs a backward pass on the
/// thread that calls `backward()`, so a forward and its backward inside `f` both follow it.
pub fn with_kernel_policy<R>(policy: KernelPolicy, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<KernelPolicy>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(policy))));
    f()
}

/// The dispatch rule of every op: the fast custom op when the policy allows it and every
/// operand is an `f32` tensor on the CPU; the portable candle ops otherwise.
pub fn use_fast(operands: &[&Tensor]) -> bool {
    kernel_policy() != KernelPolicy::Portable
        && operands
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Which CPU kernels the fast convolution may use under the policy in force:
/// (AVX-512 tiles, Winograd). The CPU and the shape have their say in `conv`.
pub(crate) fn cpu_kernels() -> (bool, bool) {
    match kernel_policy() {
        KernelPolicy::Fast => (true, true),
        KernelPolicy::NoWinograd => (true, false),
        KernelPolicy::Gemm | KernelPolicy::Portable => (false, false),
    }
}

/// `max |a − b| / max |b|` (in f64; `b`'s scale at least 1e-12): the relative difference by
/// which the project's tests compare two implementations of an op (1e-4 for the kernel paths).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[1.0f32, 2.002], &Device::Cpu)?;
/// let b = Tensor::new(&[1.0f32, 2.0], &Device::Cpu)?;
/// assert!((dia_nn::kernels::rel_diff(&a, &b)? - 1e-3).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn rel_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    if a.dims() != b.dims() {
        candle_core::bail!("rel_diff: shapes {:?} and {:?} differ", a.dims(), b.dims())
    }
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let scale = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1e-12);
    Ok(diff / scale)
}

/// `max(x, 0)` with PyTorch's gradient: `dy` where `x > 0`, 0 elsewhere (candle's own `relu`
/// passes the gradient at exactly 0 too). The portable ReLU of every op here.
pub(crate) fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    // The mask is a comparison, which candle's autograd does not differentiate; where_cond
    // sends the gradient to `x` only where the mask holds, and the zeros are constants.
    let positive = x.gt(0f64)?;
    positive.where_cond(x, &x.zeros_like()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn parses_and_scopes() {
        assert_eq!(
            "Portable".parse::<KernelPolicy>(),
            Ok(KernelPolicy::Portable)
        );
        assert_eq!("fast".parse::<KernelPolicy>(), Ok(KernelPolicy::Fast));
        for p in KernelPolicy::ALL {
            assert_eq!(p.to_string().parse::<KernelPolicy>(), Ok(p));
            assert_eq!(KernelPolicy::from_code(p.code()), p);
        }
        assert!("gpu".parse::<KernelPolicy>().is_err());
        let x = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let outer = kernel_policy();
        with_kernel_policy(KernelPolicy::Portable, || {
            assert!(!use_fast(&[&x]));
            with_kernel_policy(KernelPolicy::Fast, || assert!(use_fast(&[&x])));
            assert_eq!(kernel_policy(), KernelPolicy::Portable);
        });
        assert_eq!(kernel_policy(), outer);
        let f64s = x.to_dtype(DType::F64).unwrap();
        with_kernel_policy(KernelPolicy::Fast, || assert!(!use_fast(&[&x, &f64s])));
    }

    #[test]
    fn relu_has_pytorchs_gradient_at_zero() {
        let x = Var::new(&[-1f32, 0., 2.], &Device::Cpu).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0., 0., 2.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dx, [0., 0., 1.]);
    }
}
