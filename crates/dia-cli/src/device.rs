//! `--device auto|cpu|cuda|cuda:N`: which device a command computes on (issue #14), the line
//! every command prints about it, and the out-of-memory advice.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use candle_core::Device;
use clap::Args;

/// A device as asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum DeviceChoice {
    /// CUDA device 0 when this binary was built with CUDA and a GPU answers, else the CPU.
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
        let device = open(self.device)?;
        eprintln!("device: {}", describe(&device));
        Ok(device)
    }
}

/// Opens `choice` without printing. This is where the CPU is chosen: when asked for, or by
/// `auto` when no GPU answers.
pub(crate) fn open(choice: DeviceChoice) -> Result<Device> {
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
        anyhow::anyhow!("cannot open CUDA device {ordinal}: {first} (is the NVIDIA driver loaded?)")
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device> {
    anyhow::bail!(
        "this dia was built without CUDA, so cuda:{ordinal} is not available; \
         build it with scripts/build-cuda.sh (docs/gpu.md) or use --device cpu"
    )
}

/// Free and total memory of a CUDA device, in bytes (`None` on the CPU).
pub(crate) fn memory(device: &Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    if let Ok(cuda) = device.as_cuda_device() {
        return cuda.cuda_stream().context().mem_get_info().ok();
    }
    let _ = device;
    None
}

const GIB: f64 = (1u64 << 30) as f64;

/// `cpu (N threads)` or `cuda:0 (NVIDIA H200, 138.2 of 139.8 GiB free)`.
pub(crate) fn describe(device: &Device) -> String {
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

/// Whether an error chain is a device's out-of-memory error.
pub(crate) fn is_out_of_memory(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let s = c.to_string();
        s.contains("OUT_OF_MEMORY") || s.contains("out of memory")
    })
}

/// The advice printed when a step ran out of device memory at `batch_size`: no retry (a
/// silently smaller batch would change the experiment), but the batch size to try. Activation
/// memory grows about linearly with the batch and the failing step's peak is unknown (the
/// allocation that failed is not the last one the step needs), so the suggestion is half the
/// batch that failed: a size that is known to need at most about half the memory.
pub(crate) fn out_of_memory_advice(
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

/// `result`, with the out-of-memory advice in front of its error when that is what it is.
pub(crate) fn explain_out_of_memory<T>(
    result: Result<T>,
    device: &Device,
    batch_size: usize,
    free_at_start: Option<usize>,
) -> Result<T> {
    result.map_err(|e| {
        if is_out_of_memory(&e) {
            e.context(out_of_memory_advice(device, batch_size, free_at_start))
        } else {
            e
        }
    })
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

    #[test]
    fn out_of_memory_is_recognised_and_advised() {
        let e = anyhow::anyhow!("CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\"").context("step 3");
        assert!(is_out_of_memory(&e));
        assert!(!is_out_of_memory(&anyhow::anyhow!("shape mismatch")));
        let a = out_of_memory_advice(&Device::Cpu, 32, Some(8 << 30));
        assert!(a.contains("batch_size: 16") && a.contains("8.0 GiB"), "{a}");
    }
}
