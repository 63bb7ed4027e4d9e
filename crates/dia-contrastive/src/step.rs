//! One optimisation step of CSI or DIA (spec §5.2, §5.5): forward in training mode, the
//! contrastive loss on the SimCLR projections plus the shift cross-entropy over all rows, and
//! a LARS step.

use candle_core::Tensor;
use dia_encoder::ResNet18;

use crate::batch::ContrastiveBatch;
use crate::error::{Error, Result};
use crate::lars::Lars;
use crate::loss::{normalize, nt_xent, nt_xent_neg, NegMode};

/// The temperature τ of both losses.
pub const TEMPERATURE: f64 = 0.5;

/// The loss terms of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLosses {
    /// NT-Xent (CSI) or NT-Xent-neg (DIA).
    pub contrastive: f64,
    /// Shift cross-entropy over every row.
    pub shift: f64,
}

impl StepLosses {
    /// `contrastive + shift`.
    pub fn total(&self) -> f64 {
        self.contrastive + self.shift
    }
}

/// Computes the losses of a batch (training-mode forward), as a differentiable total and as
/// numbers.
pub fn losses(
    model: &ResNet18,
    batch: &ContrastiveBatch,
    neg_mode: NegMode,
) -> Result<(Tensor, StepLosses)> {
    // Batches are built on the host; this is their one move to the model's device.
    let images = batch.images.to_device(model.device())?;
    let out = model.forward_t(&images, true)?;
    let z = normalize(&out.simclr)?;
    let sim = z.matmul(&z.t()?)?;
    let contrastive = match batch.groups {
        2 => nt_xent(&sim, TEMPERATURE)?,
        3 => nt_xent_neg(&sim, TEMPERATURE, neg_mode)?,
        g => {
            return Err(Error::Config(format!(
                "a contrastive batch has 2 or 3 view groups, not {g}"
            )))
        }
    };
    let labels = Tensor::from_slice(
        &batch.shift_labels,
        batch.shift_labels.len(),
        out.shift.device(),
    )?;
    let shift = candle_nn::loss::cross_entropy(&out.shift, &labels)?;
    let numbers = StepLosses {
        contrastive: contrastive.to_scalar::<f32>()? as f64,
        shift: shift.to_scalar::<f32>()? as f64,
    };
    Ok(((contrastive + shift)?, numbers))
}

/// One step: losses, backward, LARS at `lr`. A non-finite loss is an error and leaves the
/// parameters untouched.
pub fn train_step(
    model: &ResNet18,
    batch: &ContrastiveBatch,
    neg_mode: NegMode,
    optimiser: &mut Lars,
    lr: f64,
) -> Result<StepLosses> {
    let (total, numbers) = losses(model, batch, neg_mode)?;
    if !numbers.total().is_finite() {
        return Err(Error::Diverged(numbers));
    }
    let grads = total.backward()?;
    optimiser.step(model.vars().values(), &grads, lr)?;
    Ok(numbers)
}
