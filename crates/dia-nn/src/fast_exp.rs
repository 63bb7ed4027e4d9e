//! `exp` for `f32` in plain arithmetic, so that a loop over it compiles to vector code (a call to
//! libm's `expf` per element cannot): the SiLU of `group_norm_silu` and the softmaxes of
//! `linear_attention`, where libm's `expf` took 6–7 % of a dissolving UNet forward (perf,
//! docs/benchmarks.md).
//!
//! Cephes' `expf`: `exp(x) = 2ᵏ·exp(r)` with `k = round(x·log₂e)` and `r = x − k·ln 2` (ln 2 in
//! two parts, so `r` is exact), `exp(r)` by a degree-7 polynomial on |r| ≤ ln 2 / 2, and `2ᵏ`
//! built in the exponent bits. Within 2 ulp of the exact value for x in [−87.3, 88.7] (tested
//! against f64 below); beyond, the argument is clamped to that range (a result near the
//! smallest normal, or near `f32::MAX`), which is what SiLU and softmax need of it. NaN stays NaN.

/// `1.5·2²³`: adding it rounds an f32 of magnitude below 2²² to an integer, held in the low
/// mantissa bits (round to nearest even, as `roundevenf` does).
const ROUND: f32 = 12_582_912.0;

/// `exp(x)`, vectorisable (see the module doc).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Plain multiplies and adds, no fused ones: the same bits with or without FMA (Rust never
    // contracts them), and no libm call where the CPU has no FMA. ln 2 = 0.693359375 − 2.12e-4:
    // the first part (0.693359375) has 9 significant bits, so its product with k is exact.
    let kplus = x * std::f32::consts::LOG2_E + ROUND;
    let kf = kplus - ROUND;
    let r = x - kf * 0.693_359_4; // = 0.693359375 in f32
    let r = r + kf * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ᵏ: k + 127 in the exponent field; k is in −126..=128 after the clamp, and 2¹²⁸ (k = 128
    // only for x > 88.38) is taken as 2·2¹²⁷.
    // k itself from the low bits of `kplus` (an integer subtraction, where `kf as i32` would
    // be a saturating conversion the compiler does lane by lane).
    let k = kplus.to_bits() as i32 - ROUND.to_bits() as i32;
    let half = (k > 127) as i32;
    let scale = f32::from_bits(((k - half + 127) as u32) << 23);
    e * scale * (1 + half) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_two_ulp_of_exp_over_the_range() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.7 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max((got - want).abs() / want);
            x += 0.00731;
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }
}
