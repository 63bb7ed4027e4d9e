//! Which device the pipeline computes on (issue #14): a device choice as users spell it
//! (`auto`, `cpu`, `cuda`, `cuda:N`), the line that describes an open device (a GPU's name and
//! free memory), and the advice given when a training step runs out of device memory.
//!
//! ```
//! use dia_pipeline::device::{open, describe, DeviceChoice};
//! let device = open("cpu".parse::<DeviceChoice>().unwrap())?;
//! assert!(describe(&device).starts_with("cpu ("));
//! # Ok::<(), dia_pipeline::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

/// A device as asked for on the command line or in a config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when this build has CUDA and a GPU answers, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?} (auto, cpu, cuda or cuda:N)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Opens `choice`. This is where the CPU is chosen: when asked for, or by `auto` when no GPU
/// answers.
pub fn open(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(cuda(0).unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda(n) => cuda(n),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    // `Device::cuda_if_available` does not fall back when the driver finds no GPU; `new_cuda`
    // fails with an error we can report.
    Device::new_cuda(ordinal).map_err(|e| {
        // candle appends a backtrace to driver errors; the first line is the message.
        let e = e.to_string();
        let first = e.lines().next().unwrap_or_default();
        Error::Device(format!(
            "cannot open CUDA device {ordinal}: {first} (is the NVIDIA driver loaded?)"
        ))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device> {
    Err(Error::Device(format!(
        "this dia was built without CUDA, so cuda:{ordinal} is not available; \
         build it with scripts/build-cuda.sh (docs/gpu.md) or use --device cpu"
    )))
}

/// Free and total memory of a CUDA device, in bytes (`None` on the CPU).
pub fn memory(device: &Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    if let Ok(cuda) = device.as_cuda_device() {
        return cuda.cuda_stream().context().mem_get_info().ok();
    }
    let _ = device;
    None
}

const GIB: f64 = (1u64 << 30) as f64;

/// `cpu (N threads)` or `cuda:0 (NVIDIA H200, 138.2 of 139.8 GiB free)`.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        _ => {
            let name = gpu_name(device).unwrap_or_else(|| "GPU".into());
            let ordinal = match device.location() {
                candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
                other => format!("{other:?}"),
            };
            match memory(device) {
                Some((free, total)) => format!(
                    "{ordinal} ({name}, {:.1} of {:.1} GiB free)",
                    free as f64 / GIB,
                    total as f64 / GIB
                ),
                None => format!("{ordinal} ({name})"),
            }
        }
    }
}

fn gpu_name(device: &Device) -> Option<String> {
    #[cfg(feature = "cuda")]
    if let Ok(cuda) = device.as_cuda_device() {
        return cuda.cuda_stream().context().name().ok();
    }
    let _ = device;
    None
}

/// Whether an error, or any of its sources, is a device's out-of-memory error.
pub fn is_out_of_memory(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        let s = e.to_string();
        if s.contains("OUT_OF_MEMORY") || s.contains("out of memory") {
            return true;
        }
        next = e.source();
    }
    false
}

/// The advice given when a step ran out of device memory at `batch_size`: no retry (a
/// silently smaller batch would change the experiment), but the batch size to try. Activation
/// memory grows about linearly with the batch and the failing step's peak is unknown (the
/// allocation that failed is not the last one the step needs), so the suggestion is half the
/// batch that failed: a size that is known to need at most about half the memory.
pub fn out_of_memory_advice(
    device: &Device,
    batch_size: usize,
    free_at_start: Option<usize>,
) -> String {
    let suggestion = (batch_size / 2).max(1);
    let free = free_at_start
        .map(|f| format!("{:.1} GiB were free at the start; ", f as f64 / GIB))
        .unwrap_or_default();
    format!(
        "{} ran out of memory at batch_size {batch_size}: {free}activation memory grows \
         linearly with the batch, so set `batch_size: {suggestion}` (or less) in the config and \
         run again (nothing was retried)",
        describe(device)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_refuses_cuda_and_auto_is_the_cpu() {
        let e = open(DeviceChoice::Cuda(0)).unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
        assert!(open(DeviceChoice::Auto).unwrap().is_cpu());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("step 3")]
    struct Step(#[source] std::io::Error);

    #[test]
    fn out_of_memory_is_recognised_and_advised() {
        let e = Step(std::io::Error::other(
            "CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\"",
        ));
        assert!(is_out_of_memory(&e));
        assert!(!is_out_of_memory(&std::io::Error::other("shape mismatch")));
        let a = out_of_memory_advice(&Device::Cpu, 32, Some(8 << 30));
        assert!(a.contains("batch_size: 16") && a.contains("8.0 GiB"), "{a}");
    }
}
