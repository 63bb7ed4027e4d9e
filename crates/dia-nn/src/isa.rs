//! Which x86-64 vector instructions the CPU kernels use (issue #17).
//!
//! The register tiles and the Winograd transforms of the fast convolutions exist for AVX-512
//! and for AVX2 + FMA. [`cpu_isa`] is the best set this CPU has, held at or
//! below a process-wide limit ([`set_isa_limit`], read from `DIA_ISA` by the `dia` binary
//! through [`Isa::from_env`]), so that an AVX-512 machine can be measured as the AVX2 laptops
//! and servers its users also run (docs/benchmarks.md), and so that every CI machine can test
//! the AVX2 kernels. Without AVX2 + FMA (or off x86-64) the convolutions use im2col + gemm.
//!
//! ```
//! use dia_nn::isa::{cpu_isa, set_isa_limit, Isa};
//! set_isa_limit(Isa::Avx2);
//! assert!(cpu_isa() <= Some(Isa::Avx2)); // None on a CPU without AVX2
//! set_isa_limit(Isa::Avx512);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

/// A set of vector instructions, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// AVX2 with FMA: 16 registers of 8 floats.
    Avx2,
    /// AVX-512F: 32 registers of 16 floats.
    Avx512,
}

/// The environment variable read by [`Isa::from_env`].
pub const ISA_ENV: &str = "DIA_ISA";

/// A `DIA_ISA` value that names no instruction set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownIsa(pub String);

impl fmt::Display for UnknownIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown instruction set {:?} (expected avx512 or avx2)",
            self.0
        )
    }
}

impl std::error::Error for UnknownIsa {}

impl FromStr for Isa {
    type Err = UnknownIsa;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" | "" => Ok(Self::Avx512),
            "avx2" => Ok(Self::Avx2),
            _ => Err(UnknownIsa(s.to_string())),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        })
    }
}

impl Isa {
    /// The limit named by `DIA_ISA` (`avx512`, the default, or `avx2`). The library never
    /// reads the environment by itself: a program calls this and [`set_isa_limit`].
    pub fn from_env() -> Result<Self, UnknownIsa> {
        std::env::var(ISA_ENV).map_or(Ok(Self::Avx512), |v| v.parse())
    }
}

/// The limit, as `Isa as u8` (AVX-512 by default: no limit).
static LIMIT: AtomicU8 = AtomicU8::new(Isa::Avx512 as u8);

/// Holds the kernels at or below `limit`, process-wide (kernels started before keep theirs).
pub fn set_isa_limit(limit: Isa) {
    LIMIT.store(limit as u8, Ordering::Relaxed);
}

/// The best instruction set of this CPU (checked once), before the limit.
pub fn detected_isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            if std::is_x86_feature_detected!("avx512f") {
                Some(Isa::Avx512)
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            {
                Some(Isa::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The instruction set the kernels use now: [`detected_isa`] held to the limit; `None` when
/// the CPU has neither (the kernels then fall back to im2col + gemm).
pub fn cpu_isa() -> Option<Isa> {
    let limit = if LIMIT.load(Ordering::Relaxed) == Isa::Avx2 as u8 {
        Isa::Avx2
    } else {
        Isa::Avx512
    };
    detected_isa().map(|d| d.min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways() {
        for isa in [Isa::Avx2, Isa::Avx512] {
            assert_eq!(isa.to_string().parse::<Isa>(), Ok(isa));
        }
        assert_eq!("AVX2".parse::<Isa>(), Ok(Isa::Avx2));
        let e = "sse4".parse::<Isa>().unwrap_err();
        assert!(e.to_string().contains("avx512 or avx2"), "{e}");
    }
}
