//! `dia bench`: throughput of the hot paths (`dia_pipeline::bench`), as a table or one JSON
//! object per workload, the format `scripts/bench_torch.py` also writes.

use anyhow::{bail, Result};
use clap::Args;
use dia_pipeline::bench::{measure, peak_rss_mib, WORKLOADS};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Workload to run (all when omitted).
    workload: Option<String>,
    /// One JSON object per workload on stdout.
    #[arg(long)]
    json: bool,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    if args.list {
        for (name, what) in WORKLOADS {
            println!("{name:<26} {what}");
        }
        return Ok(());
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dev = args.device.open()?;
    let names: Vec<String> = match &args.workload {
        Some(w) => vec![w.clone()],
        None => WORKLOADS.iter().map(|w| w.0.to_string()).collect(),
    };
    if !args.json {
        println!(
            "{:<26} {:>10} {:>10} {:>8} {:>5} {:>14}   (threads: {})",
            "workload",
            "images/s",
            "median s",
            "GFLOP/s",
            "runs",
            "peak RSS MiB",
            rayon::current_num_threads()
        );
    }
    for name in names {
        let m = measure(&name, &dev, args.warmup, args.runs)?;
        let peak = peak_rss_mib();
        if args.json {
            let obj = serde_json::json!({
                "workload": name,
                "images_per_s": m.images_per_s,
                "median_s": m.median_s,
                "gflops": m.gflops,
                "runs": args.runs,
                "peak_rss_mib": peak,
                "impl": "dia",
                "device": dia_pipeline::device::describe(&dev),
                "kernels": dia_nn::kernel_policy().to_string(),
                "isa": dia_nn::isa::cpu_isa().map_or("none".into(), |i| i.to_string()),
            });
            println!("{obj}");
        } else {
            let peak = peak.map_or("-".into(), |p| format!("{p:.0}"));
            let gflops = m.gflops.map_or("-".into(), |g| format!("{g:.1}"));
            println!(
                "{name:<26} {:>10.1} {:>10.4} {gflops:>8} {:>5} {peak:>14}",
                m.images_per_s, m.median_s, args.runs
            );
        }
    }
    Ok(())
}
