//! Helpers shared by the dia-nn tests.

use candle_core::Tensor;

/// max |a − b| / max |b| (the relative error the acceptance criteria use).
#[allow(dead_code)] // not every test binary that shares this module compares tensors
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    dia_nn::kernels::rel_diff(a, b).unwrap() as f32
}

/// Holds the kernels to the instruction set named by `DIA_ISA` (as the `dia` binary does), so
/// that `DIA_ISA=avx2 cargo test -p dia-nn --tests` (in `.ci/run`) runs these tests on the AVX2
/// tiles on an AVX-512 machine too. Every test that runs the fast path calls this first.
#[allow(dead_code)] // not every test binary that shares this module runs the fast path
pub fn hold_isa_from_env() {
    let limit = dia_nn::isa::Isa::from_env().expect("DIA_ISA names an instruction set");
    dia_nn::isa::set_isa_limit(limit);
}
