//! Helpers shared by the dia-nn tests.

use candle_core::Tensor;

/// max |a − b| / max |b| (the relative error the acceptance criteria use).
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    dia_nn::kernels::rel_diff(a, b).unwrap() as f32
}
