//! `ecoplace`: energy- and carbon-aware placement for Kubernetes and OCM.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use scheduler::commands::{
    carbon_window, config, ocm_scores, place, rebalance, report, serve, simulate, telemetry,
};

/// Energy- and carbon-aware placement for Kubernetes and Open Cluster Management.
#[derive(Debug, Parser)]
#[command(name = "ecoplace", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the fleet's power, top pods and carbon intensity from Kepler (or the demo fleet).
    Telemetry(Box<telemetry::TelemetryArgs>),
    /// Run the kube-scheduler extender (filter/prioritize over HTTP).
    Serve(serve::ServeArgs),
    /// Compare placement policies over a simulated week: energy, carbon, SLOs, latency.
    Simulate(simulate::SimulateArgs),
    /// Sustainability report of a fleet over a period from Kepler history: energy, carbon, savings.
    Report(Box<report::ReportArgs>),
    /// Publish OCM AddOnPlacementScores (carbon, energy, latency, ecoplace) on the hub.
    OcmScores(ocm_scores::OcmScoresArgs),
    /// Hold pods gated with `ecoplace.io/carbon-window` until their cleanest window before the deadline.
    CarbonWindow(carbon_window::CarbonWindowArgs),
    /// Configuration: `reference` (Markdown of every key), `schema`, `check FILE`.
    Config(config::ConfigArgs),
    /// Place workloads on managed clusters from a request file; the plan as JSON.
    Place(place::PlaceArgs),
    /// Moves worth their migration: between clusters (advisory) or nodes (`--nodes`, evicts with `--execute`).
    Rebalance(rebalance::RebalanceArgs),
}

/// Runs the command; an error prints its chain of causes on one line, `error: …`, without
/// a backtrace (even with `RUST_BACKTRACE` set), and exits 1. Usage errors exit 2 (clap).
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ECOPLACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal, and not with NO_COLOR set: a pod's log (a pipe or a
    // file) gets plain text.
    let colours = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Telemetry(args) => telemetry::run(*args).await?,
        Command::Serve(args) => serve::run(args).await?,
        Command::CarbonWindow(args) => carbon_window::run(args).await?,
        Command::Report(args) => report::run(*args).await?,
        Command::Simulate(args) => tokio::task::block_in_place(|| simulate::run(args))?,
        Command::Config(args) => return config::run(args),
        Command::OcmScores(args) => ocm_scores::run(args).await?,
        Command::Place(args) => return place::run(args).await,
        Command::Rebalance(args) => return rebalance::run(args).await,
    }
    Ok(ExitCode::SUCCESS)
}
