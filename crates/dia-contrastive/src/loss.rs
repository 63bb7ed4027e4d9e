//! The contrastive losses (spec §5.5): CSI's NT-Xent and DIA's NT-Xent-neg, on the cosine
//! similarities of the SimCLR projections.

use candle_core::{bail, DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// `z / (‖z‖₂ + 1e-8)` along the last dimension (the reference's `normalize`).
pub fn normalize(z: &Tensor) -> Result<Tensor> {
    let norm = z.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    z.broadcast_div(&(norm + 1e-8)?)
}

/// CSI's `NT_xent(sim, τ, chunk=2)` on a 2M × 2M similarity matrix whose rows `i` and `M + i`
/// are the two views of one (image, shift):
/// `E = exp(S/τ)·(1 − I)`, `L = −log(E_ij / (Σ_j E_ij + 1e-8) + 1e-8)`, and
/// `loss = Σ_i [L(i, M+i) + L(M+i, i)] / 2M`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// // Two views of one image, perfectly aligned: the only candidate is the positive.
/// let sim = Tensor::new(&[[1f32, 1.], [1., 1.]], &Device::Cpu)?;
/// let loss = dia_contrastive::nt_xent(&sim, 0.5)?.to_scalar::<f32>()?;
/// assert!(loss.abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn nt_xent(sim: &Tensor, temperature: f64) -> Result<Tensor> {
    let (n, n2) = sim.dims2()?;
    if n != n2 || n % 2 != 0 || n == 0 {
        bail!("nt_xent: expected a square similarity matrix with an even side, got {n}x{n2}")
    }
    let m = n / 2;
    let dev = sim.device();
    let off_diag = (Tensor::ones((n, n), DType::F32, dev)? - Tensor::eye(n, DType::F32, dev)?)?;
    let e = ((sim / temperature)?.exp()? * off_diag)?;
    let denom = (e.sum_keepdim(1)? + 1e-8)?;
    let l = ((e.broadcast_div(&denom)? + 1e-8)?.log()?.neg())?;
    // The partner of row i is (i + M) mod 2M.
    let partner: Vec<u32> = (0..n).map(|i| ((i + m) % n) as u32).collect();
    let idx = Tensor::from_vec(partner, (n, 1), dev)?;
    l.gather(&idx, 1)?.sum_all()? / n as f64
}

/// What NT-Xent-neg masks besides the diagonal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegMode {
    /// The reference default: the dissolved copy of the same image under the same shift is
    /// neither positive nor negative.
    ShiftedRemoved,
    /// Only the diagonal is masked: that dissolved copy counts as a negative.
    Naive,
}

/// DIA's `NT_xent_neg(sim, τ, chunk=3, mode)` on a 3M × 3M similarity matrix whose row blocks
/// are the two clean views (rows 0..M and M..2M) and the dissolved views (2M..3M):
/// `E = exp(S/τ)·(1 − mask)`, `L = −log(E_ij / (Σ_j E_ij + 1e-8) + 1e-8)`, and
/// `loss = Σ_{i<M} [L(i, M+i) + L(M+i, i)] / 3M`. Dissolved rows are never anchors: they only
/// add negatives to the denominators.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_contrastive::{nt_xent_neg, NegMode};
/// let sim = Tensor::ones((3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// // M = 1, shifted_removed: the only unmasked entry of rows 0 and 1 is the positive.
/// let loss = nt_xent_neg(&sim, 0.5, NegMode::ShiftedRemoved)?.to_scalar::<f32>()?;
/// assert!(loss.abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn nt_xent_neg(sim: &Tensor, temperature: f64, mode: NegMode) -> Result<Tensor> {
    let (n, n2) = sim.dims2()?;
    if n != n2 || n % 3 != 0 || n == 0 {
        bail!("nt_xent_neg: expected a square similarity matrix with a side divisible by 3, got {n}x{n2}")
    }
    let m = n / 3;
    let mut keep = vec![1f32; n * n];
    for i in 0..n {
        keep[i * n + i] = 0.0;
    }
    if mode == NegMode::ShiftedRemoved {
        for i in 0..m {
            for (a, b) in [(i, 2 * m + i), (m + i, 2 * m + i)] {
                keep[a * n + b] = 0.0;
                keep[b * n + a] = 0.0;
            }
        }
    }
    let keep = Tensor::from_vec(keep, (n, n), sim.device())?.to_dtype(sim.dtype())?;
    let e = ((sim / temperature)?.exp()? * keep)?;
    let denom = (e.sum_keepdim(1)? + 1e-8)?;
    let l = ((e.broadcast_div(&denom)? + 1e-8)?.log()?.neg())?;
    // Anchors: rows 0..2M, each with its other clean view as the positive.
    let anchors = l.narrow(0, 0, 2 * m)?;
    let partner: Vec<u32> = (0..2 * m).map(|i| ((i + m) % (2 * m)) as u32).collect();
    let idx = Tensor::from_vec(partner, (2 * m, 1), sim.device())?;
    anchors.gather(&idx, 1)?.sum_all()? / (3 * m) as f64
}
