//! Optimiser steps on candle variables.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// Plain SGD, `p ← p − lr·g`, over every variable that has a gradient.
pub fn sgd_step<'a>(
    vars: impl IntoIterator<Item = &'a Var>,
    grads: &GradStore,
    lr: f64,
) -> Result<()> {
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            v.set(&(v.as_tensor().detach() - (g.detach() * lr)?)?)?;
        }
    }
    Ok(())
}
