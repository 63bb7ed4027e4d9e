//! Thread settings for the CPU: one busy pool at a time.
//!
//! Two thread pools share the cores of a dia process. candle runs its own CPU ops (element-wise
//! maps, reductions, copies) on its barrier pool; dia-nn's kernels, and gemm's, run on rayon's.
//! After each op, candle's idle workers spin (by default 25,000 `pause` rounds, about a third
//! of a millisecond) before they park, waiting for the next candle op. When the next op is one
//! of dia-nn's, that spinning worker competes for a core with rayon's workers doing the real
//! work: profiled on a 2-vCPU Zen 3 machine, it took 5.7 % of all CPU samples of the 64-px
//! ImageNet-stem training step, and setting the spin limit to 0 made that step 17 % faster
//! (117.8 → 138.4 img/s, medians of two alternated runs; every other `dia bench` workload
//! the same or faster; issue #17, docs/benchmarks.md). A parked worker costs one wake-up
//! (a futex call) per candle op instead.
//!
//! [`tune_threads`] sets that limit to 0 for the process, unless the environment already
//! sets it.

/// candle's environment variable for the barrier pool's spin rounds before a worker parks.
pub const CANDLE_SPIN_ENV: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Makes candle's idle CPU workers park at once instead of spinning (module documentation), by
/// setting [`CANDLE_SPIN_ENV`] to 0 when it is unset; a value the user set is kept. Call at
/// the start of `main`, before any other thread starts (it changes the process environment)
/// and before the first candle op (candle reads the variable when its pool starts). Returns
/// the limit candle will use, or `None` when the variable holds something other than a number
/// (candle then uses its default).
///
/// ```
/// // In a binary's `main`, first thing:
/// let spin = dia_nn::tune_threads();
/// assert!(spin.is_some());
/// ```
pub fn tune_threads() -> Option<u32> {
    match std::env::var(CANDLE_SPIN_ENV) {
        Ok(v) => v.trim().parse().ok(),
        Err(_) => {
            std::env::set_var(CANDLE_SPIN_ENV, "0");
            Some(0)
        }
    }
}
