//! `--device auto|cpu|cuda|cuda:N` (`dia_pipeline::device`): the flag, the line every command
//! prints about its device, and the out-of-memory advice in front of a training error.

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use dia_pipeline::device::{describe, is_out_of_memory, out_of_memory_advice, DeviceChoice};

/// The `--device` flag, flattened into every command that computes.
#[derive(Args, Clone, Copy, Debug, Default)]
pub(crate) struct DeviceArgs {
    /// Device to compute on: auto (CUDA when built with it and a GPU answers, else the CPU),
    /// cpu, cuda or cuda:N. Configs are device-agnostic.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub(crate) device: DeviceChoice,
}

impl DeviceArgs {
    /// Opens the device and prints which one it is (and its free memory on a GPU).
    pub(crate) fn open(&self) -> Result<Device> {
        let device = dia_pipeline::device::open(self.device)?;
        eprintln!("device: {}", describe(&device));
        Ok(device)
    }
}

/// `result`, with the out-of-memory advice in front of its error when that is what it is.
pub(crate) fn explain_out_of_memory<T, E>(
    result: std::result::Result<T, E>,
    device: &Device,
    batch_size: usize,
    free_at_start: Option<usize>,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    result.map_err(|e| {
        let advice =
            is_out_of_memory(&e).then(|| out_of_memory_advice(device, batch_size, free_at_start));
        let e = anyhow::Error::from(e);
        match advice {
            Some(a) => e.context(a),
            None => e,
        }
    })
}
