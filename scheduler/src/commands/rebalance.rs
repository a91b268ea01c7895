//! `ecoplace rebalance`: the moves worth their migration, as JSON — between managed clusters
//! from a request file (`-f`, advisory), or between the nodes of the Kubernetes cluster in
//! reach (`--nodes`), where `--execute` evicts the pods that should move.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;

use super::place::{answer, read_request};
use crate::node_rebalance::evict::{self, Outcome, Pace};
use crate::node_rebalance::plan_live;
use crate::preflight;
use crate::runtime;
use crate::shutdown::Shutdown;

/// Why `--execute` is refused at cluster level.
pub const EXECUTE_REFUSED: &str = "ecoplace rebalance: --execute is not available between clusters: cluster-level moves are advisory (OCM Placements follow the published scores), so move a workload by changing its Placement. Run with --dry-run (the default) to list the moves, or use --nodes --execute to move pods between the nodes of one cluster through the Eviction API.";

/// Arguments of `ecoplace rebalance`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebalanceArgs {
    /// Cluster level: the request with clusters and workloads with their `current`
    /// clusters (YAML or JSON; `-` reads stdin).
    #[arg(
        short = 'f',
        long = "file",
        required_unless_present = "nodes",
        conflicts_with = "nodes"
    )]
    pub file: Option<PathBuf>,
    /// Node level: re-plan the running pods of the Kubernetes cluster in reach (in-cluster
    /// or KUBECONFIG) over its nodes, from Kepler telemetry (needs --config).
    #[arg(long, requires = "config")]
    pub nodes: bool,
    /// List the moves only (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Node level: evict the pods of the advised moves (Eviction API, paced and capped).
    #[arg(long)]
    pub execute: bool,
    /// Smallest weighted normalised objective gain a move must bring (overrides the
    /// request's `minGain` and the configuration's `placement.minGain`).
    #[arg(long)]
    pub min_gain: Option<f64>,
    /// Node level: most pods evicted in this run (overrides `rebalance.maxEvictions`).
    #[arg(long)]
    pub max_evictions: Option<u32>,
    /// Node level: seconds between two evictions (overrides
    /// `rebalance.evictionIntervalSeconds`).
    #[arg(long)]
    pub eviction_interval: Option<f64>,
    /// Configuration file (ecoplace.yaml): `placement` settings; with --nodes also
    /// telemetry, carbon, topology, power, policy and `rebalance`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `ecoplace rebalance`; `--execute` without `--nodes` is refused with status 2.
pub async fn run(args: RebalanceArgs) -> Result<ExitCode> {
    if let Some(g) = args.min_gain
        && !(g.is_finite() && g >= 0.0)
    {
        eprintln!("ecoplace rebalance: --min-gain {g}: must be a finite number ≥ 0");
        return Ok(ExitCode::from(2));
    }
    if let Some(s) = args.eviction_interval
        && !(0.0..=crate::config::MAX_PERIOD_S).contains(&s)
    {
        eprintln!(
            "ecoplace rebalance: --eviction-interval {s}: must be in 0..={} seconds",
            crate::config::MAX_PERIOD_S
        );
        return Ok(ExitCode::from(2));
    }
    if args.nodes {
        return nodes(args).await;
    }
    if args.execute {
        eprintln!("{EXECUTE_REFUSED}");
        return Ok(ExitCode::from(2));
    }
    let file = args.file.context("-f FILE is required without --nodes")?;
    let placer = super::place::placer(args.config.as_deref()).await?;
    let (body, format) = read_request(&file)?;
    let now = Utc::now();
    let req = match placer.decode(&body, format, now).await {
        Ok(req) => req,
        Err(e) => return answer::<()>(Err(e)),
    };
    tokio::task::block_in_place(|| answer(placer.rebalance(&req, args.min_gain, now)))
}

/// Node level: plan from the apiserver and Prometheus, then evict when asked. Status 1
/// when no plan could be made or an eviction failed. With `--execute`, SIGTERM or SIGINT
/// stops the run between two evictions: what was done is printed, the rest is
/// `not-attempted`, and the status is as for a run that ended there (0 unless an
/// eviction failed).
async fn nodes(args: RebalanceArgs) -> Result<ExitCode> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let path = args.config.as_deref().context("--nodes needs --config")?;
    let config = Arc::new(preflight::load(path, preflight::Verb::Rebalance)?);
    let (source, carbon) = runtime::sources(&config, "with --nodes")?;
    // A live carbon source is read once (latest value and forecast) before planning.
    let _carbon_refresh = carbon.start(&prometheus::Registry::new()).await?;
    let kube_config = kube::Config::infer()
        .await
        .context("finding the Kubernetes apiserver (in-cluster or KUBECONFIG)")?;
    let client = kube::Client::try_from(kube_config.clone())
        .context("connecting to the Kubernetes apiserver")?;
    let power = runtime::power_model(&config);
    let min_gain = args.min_gain.unwrap_or(config.placement.min_gain);
    let planned = plan_live(
        &client,
        &source,
        carbon.source.as_ref(),
        &config,
        power.as_ref(),
        min_gain,
        Utc::now(),
    )
    .await;
    let mut out = match planned {
        Ok(out) => out,
        Err(e) => {
            eprintln!("ecoplace rebalance: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.execute {
        out.plan.mode = "execute";
        let pace = Pace {
            max_evictions: args.max_evictions.unwrap_or(config.rebalance.max_evictions),
            interval: Duration::from_secs_f64(
                args.eviction_interval
                    .unwrap_or(config.rebalance.eviction_interval_seconds),
            ),
        };
        let evicting =
            evict::client(kube_config).context("connecting to the Kubernetes apiserver")?;
        // From here on a signal stops the run between evictions (before, it ends the
        // process: nothing was done yet).
        let shutdown = Shutdown::on_signals().context("installing the SIGTERM/SIGINT handlers")?;
        evict::execute(&evicting, &mut out.evictions, pace, &shutdown).await;
        if let Some(why) = shutdown.reason() {
            let count = |o: Outcome| out.evictions.iter().filter(|e| e.outcome == o).count();
            eprintln!(
                "ecoplace rebalance: stopped by {why}: {} evicted, {} not attempted",
                count(Outcome::Evicted),
                count(Outcome::NotAttempted)
            );
        }
    }
    let failed = out.evictions.iter().any(|e| e.outcome == Outcome::Failed);
    super::print_out(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
