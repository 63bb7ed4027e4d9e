//! The transformed filters of a layer whose weights do not change ([`Conv2d::freeze`]).
//!
//! Winograd's forward pass first transforms every 3 × 3 kernel to its 6 × 6 form
//! (`winograd::filter`): for the DDPM UNet's 512-channel layers that is 38 MB written per
//! layer per call; in the DIA training step, which dissolves 8 images per rotation, that was
//! about a tenth of the whole step (perf, docs/benchmarks.md). A dissolver's weights never
//! change, so a frozen layer transforms them once, on its first CPU forward, and keeps the
//! result: 4× its 3 × 3 weights in memory (about 520 MB for the paper's UNet).
//!
//! [`Conv2d::freeze`]: super::Conv2d::freeze

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A layer's transformed filters, computed at most once and shared by its clones.
#[derive(Clone, Default)]
pub(crate) struct FrozenFilter(Arc<OnceLock<Vec<f32>>>);

impl FrozenFilter {
    /// The kept filters, computed by `transform` on the first call.
    pub fn get_or_init(&self, transform: impl FnOnce() -> Vec<f32>) -> &[f32] {
        self.0.get_or_init(transform)
    }

    /// Whether the filters have been computed.
    #[cfg(test)]
    pub fn is_ready(&self) -> bool {
        self.0.get().is_some()
    }
}

impl fmt::Debug for FrozenFilter {
    // Not the 38 MB of floats.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some(u) => write!(f, "FrozenFilter({} floats)", u.len()),
            None => f.write_str("FrozenFilter(not yet computed)"),
        }
    }
}
