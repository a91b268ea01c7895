//! `ecoplace rebalance [--dry-run|--execute] -f request.yaml`: the moves from the current
//! cluster placement that are worth their migration, as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;

use super::place::{answer, placement_config, read_request};
use crate::placement::{PlacementRequest, Placer};

/// Why `--execute` is refused.
pub const EXECUTE_REFUSED: &str = "ecoplace rebalance: --execute is not available. Cluster-level moves are advisory: OCM Placements follow the published scores, so move a workload by changing its Placement. Node-level eviction (the Eviction API) is not implemented yet. Run with --dry-run (the default) to list the moves.";

/// Arguments of `ecoplace rebalance`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebalanceArgs {
    /// The request: clusters and workloads with their `current` clusters (YAML or JSON;
    /// `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// List the moves only (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Carry the moves out (not available: cluster-level moves are advisory).
    #[arg(long)]
    pub execute: bool,
    /// Smallest weighted normalised objective gain a move must bring (overrides the
    /// request's `minGain` and the configuration's `placement.minGain`).
    #[arg(long)]
    pub min_gain: Option<f64>,
    /// Configuration file (ecoplace.yaml) for the `placement` settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `ecoplace rebalance`; `--execute` is refused with status 2.
pub fn run(args: RebalanceArgs) -> Result<ExitCode> {
    if args.execute {
        eprintln!("{EXECUTE_REFUSED}");
        return Ok(ExitCode::from(2));
    }
    if let Some(g) = args.min_gain
        && !(g.is_finite() && g >= 0.0)
    {
        eprintln!("ecoplace rebalance: --min-gain {g}: must be a finite number ≥ 0");
        return Ok(ExitCode::from(2));
    }
    let placer = Placer::new(placement_config(args.config.as_deref())?);
    let (body, format) = read_request(&args.file)?;
    answer(
        PlacementRequest::decode(&body, format)
            .and_then(|req| placer.rebalance(&req, args.min_gain, Utc::now())),
    )
}
