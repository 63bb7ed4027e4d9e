//! `dia`: the command line of the DIA / CSI anomaly detectors. It parses arguments and calls the
//! library crates; no algorithm lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod data;
mod ddpm;
mod device;
mod embed;
mod eval;
mod experiment;
mod progress;
mod quickstart;
mod train;

#[derive(Parser)]
#[command(
    name = "dia",
    version,
    about = "Dissolving Is Amplifying: fine-grained anomaly detection (DIA, ECCV 2024) and CSI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train and compare CSI and DIA on the embedded sample (about 10 minutes; no download).
    Quickstart(quickstart::QuickstartArgs),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train a CSI or DIA encoder from a YAML config (run directory with metrics and checkpoints).
    Train(train::TrainArgs),
    /// Train the dissolving DDPM from a YAML config (spec §2.2).
    TrainDdpm(ddpm::TrainDdpmArgs),
    /// Dissolve images with a DDPM at one or several timesteps (PNG strip or .npy).
    Dissolve(ddpm::DissolveArgs),
    /// Sample images from a DDPM (DDIM or the full ancestral loop).
    Sample(ddpm::SampleArgs),
    /// Features of a trained encoder (penultimate, simclr, shift) for images, no augmentation.
    Embed(embed::EmbedArgs),
    /// Score the test set of a trained encoder: report.json, scores.csv, roc.png, scores.png.
    Eval(eval::EvalArgs),
    /// Score new images with an evaluated encoder (CSV), optionally with a threshold.
    Predict(eval::PredictArgs),
    /// Run a grid of methods x normal classes x seeds and write one results table.
    Experiment(experiment::ExperimentArgs),
    /// Throughput of the hot paths (compare with scripts/bench_torch.py on the same machine).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // candle's idle workers park at once instead of spinning beside dia-nn's (dia-nn::threads);
    // first, while this is the only thread.
    dia_nn::tune_threads();
    // Keep large training buffers mapped between steps (dia-nn::alloc).
    dia_nn::tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The kernel policy of dia-nn (docs/gpu.md): `DIA_KERNELS=portable` runs, on any device,
    // the candle-op implementations a GPU runs.
    match dia_nn::KernelPolicy::from_env() {
        Ok(policy) => {
            if policy != dia_nn::KernelPolicy::Fast {
                eprintln!(
                    "kernels: {policy} ({}={policy})",
                    dia_nn::kernels::KERNELS_ENV
                );
            }
            dia_nn::set_kernel_policy(policy);
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dia_nn::kernels::KERNELS_ENV);
            return ExitCode::FAILURE;
        }
    }
    // `DIA_ISA=avx2` holds the CPU kernels to AVX2 + FMA on an AVX-512 machine (dia_nn::isa).
    match dia_nn::isa::Isa::from_env() {
        Ok(limit) => {
            if limit != dia_nn::isa::Isa::Avx512 {
                eprintln!(
                    "kernels: at most {limit} ({}={limit})",
                    dia_nn::isa::ISA_ENV
                );
            }
            dia_nn::isa::set_isa_limit(limit);
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dia_nn::isa::ISA_ENV);
            return ExitCode::FAILURE;
        }
    }
    let result = match Cli::parse().command {
        Command::Quickstart(args) => quickstart::run(args).map(|()| ExitCode::SUCCESS),
        Command::Data(cmd) => data::run(cmd),
        Command::Train(args) => train::run(args).map(|()| ExitCode::SUCCESS),
        Command::TrainDdpm(args) => ddpm::train_ddpm(args).map(|()| ExitCode::SUCCESS),
        Command::Dissolve(args) => ddpm::dissolve(args).map(|()| ExitCode::SUCCESS),
        Command::Sample(args) => ddpm::sample(args).map(|()| ExitCode::SUCCESS),
        Command::Embed(args) => embed::run(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval::eval(args).map(|()| ExitCode::SUCCESS),
        Command::Predict(args) => eval::predict(args).map(|()| ExitCode::SUCCESS),
        Command::Experiment(args) => experiment::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause added only when the text so far does not
/// already hold it (our errors print their source inside their own message; `{:#}` would
/// print "X (os error 28): X (os error 28)").
fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
