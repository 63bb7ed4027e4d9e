//! The contrastive loss of CSI (spec §5.5): NT-Xent on the cosine similarities of the SimCLR
//! projections.

use candle_core::{bail, DType, Result, Tensor, D};

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
