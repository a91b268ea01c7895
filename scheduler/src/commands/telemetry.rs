//! `ecoplace telemetry`: what Kepler says the fleet draws right now, and what it emits.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::{FleetSnapshot, PrometheusSource, Reading, SimulatedFleet, TelemetrySource};
use serde::Serialize;

use super::args::{CarbonArgs, ConnectionArgs, cluster_zones};
use super::training;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// The snapshot and carbon figures as JSON.
    Json,
}

/// Arguments of `ecoplace telemetry`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TelemetryArgs {
    /// Prometheus or Thanos Query base URL.
    #[arg(long, conflicts_with = "demo", required_unless_present = "demo")]
    pub prometheus: Option<String>,
    /// Use the embedded simulated fleet instead of Prometheus.
    #[arg(long)]
    pub demo: bool,
    /// Seed of the simulated fleet.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluation time (RFC 3339). Default: now; with --demo 2020-03-04T12:00:00Z, inside
    /// the embedded 2020 carbon data.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Show only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// How many pods to list, by power.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Carbon zone of a cluster, `CLUSTER=ZONE`; repeatable (the demo fleet knows its own).
    #[arg(long = "cluster-zone", value_name = "CLUSTER=ZONE")]
    pub cluster_zone: Vec<String>,
    /// Carbon-intensity sources.
    #[command(flatten)]
    pub carbon: CarbonArgs,
    /// How to reach and read Prometheus/Thanos.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// A `telemetry` subcommand instead of the fleet view.
    #[command(subcommand)]
    pub command: Option<TelemetryCommand>,
}

/// Subcommands of `ecoplace telemetry`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TelemetryCommand {
    /// Write per-node CPU utilisation and power history as CSV, to train the power model.
    #[command(after_long_help = training::AFTER_HELP)]
    ExportTrainingData(training::ExportArgs),
}

/// A cluster's grid carbon intensity at the snapshot time, or why it is unknown.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterCarbon {
    /// Carbon zone of the cluster.
    pub zone: Option<String>,
    /// gCO2e/kWh at the snapshot time.
    pub g_per_kwh: Option<f64>,
    /// Why the intensity is unknown.
    pub unknown_because: Option<String>,
}

/// Everything `ecoplace telemetry` shows.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryView {
    /// Evaluation time.
    pub now: DateTime<Utc>,
    /// The snapshot.
    pub snapshot: FleetSnapshot,
    /// Carbon intensity per cluster.
    pub carbon: BTreeMap<String, ClusterCarbon>,
    /// Where the intensity comes from, and what it means (average, marginal, …).
    pub carbon_source: String,
}

/// Runs the command (or its subcommand) and prints its output.
pub async fn run(args: TelemetryArgs) -> Result<()> {
    if let Some(TelemetryCommand::ExportTrainingData(export)) = args.command {
        return training::run(export).await;
    }
    let view = collect(&args).await?;
    let out = match args.output {
        Output::Json => serde_json::to_string_pretty(&view)?,
        Output::Table => render_table(&view, args.top),
    };
    super::print_out(&(out + "\n"))?;
    Ok(())
}

/// Takes the snapshot and looks up carbon intensity.
pub async fn collect(args: &TelemetryArgs) -> Result<TelemetryView> {
    let mut zones = cluster_zones(&args.cluster_zone)?;
    let (source, now): (Box<dyn TelemetrySource>, DateTime<Utc>) = match &args.prometheus {
        Some(url) => {
            let source = PrometheusSource::new(args.connection.config(url))?;
            (Box::new(source), args.at.unwrap_or_else(Utc::now))
        }
        None => {
            let mut fleet = SimulatedFleet::embedded(args.seed);
            fleet.zone = args.connection.zone.clone();
            for c in &fleet.clusters {
                zones
                    .entry(c.name.clone())
                    .or_insert_with(|| c.carbon_zone.clone());
            }
            let default_at = Utc
                .with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
                .single()
                .context("demo time")?;
            (Box::new(fleet), args.at.unwrap_or(default_at))
        }
    };
    let mut snapshot = source
        .snapshot(now)
        .await
        .with_context(|| format!("reading telemetry from {}", source.describe()))?;
    if let Some(only) = &args.cluster {
        anyhow::ensure!(
            snapshot.clusters.contains_key(only),
            "cluster `{only}` not found; clusters: {}",
            snapshot
                .clusters
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        snapshot.clusters.retain(|name, _| name == only);
    }
    let (curves, carbon_source) = args
        .carbon
        .source(
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::seconds(1),
        )
        .await?;
    let carbon = carbon_per_cluster(&snapshot, &zones, curves.as_ref(), now).await;
    Ok(TelemetryView {
        now,
        snapshot,
        carbon,
        carbon_source,
    })
}

async fn carbon_per_cluster(
    snapshot: &FleetSnapshot,
    zones: &BTreeMap<String, String>,
    curves: &dyn CarbonIntensitySource,
    now: DateTime<Utc>,
) -> BTreeMap<String, ClusterCarbon> {
    let mut out = BTreeMap::new();
    for cluster in snapshot.clusters.keys() {
        let entry = match zones.get(cluster) {
            None => ClusterCarbon {
                zone: None,
                g_per_kwh: None,
                unknown_because: Some(format!(
                    "no carbon zone for cluster `{cluster}` (pass --cluster-zone {cluster}=ZONE)"
                )),
            },
            Some(z) => match CarbonIntensitySource::intensity_at(curves, z, now).await {
                Ok(g) => ClusterCarbon {
                    zone: Some(z.clone()),
                    g_per_kwh: Some(g),
                    unknown_because: None,
                },
                Err(e) => ClusterCarbon {
                    zone: Some(z.clone()),
                    g_per_kwh: None,
                    unknown_because: Some(e.to_string()),
                },
            },
        };
        out.insert(cluster.clone(), entry);
    }
    out
}

fn watts(r: &Reading) -> String {
    match r {
        Reading::Fresh(s) => format!("{:.1}", s.value),
        Reading::Stale(s) => format!("{:.1}*", s.value),
        Reading::Missing => "-".into(),
    }
}

fn ratio(r: &Reading) -> String {
    match r {
        Reading::Fresh(s) => format!("{:.0}%", s.value * 100.0),
        Reading::Stale(s) => format!("{:.0}%*", s.value * 100.0),
        Reading::Missing => "-".into(),
    }
}

/// Renders the view as tables with a legend that explains every figure.
pub fn render_table(view: &TelemetryView, top: usize) -> String {
    let s = &view.snapshot;
    let mut o = String::new();
    let schema = s.schema.map_or("simulated (no Kepler)".to_string(), |k| {
        format!("Kepler {k}")
    });
    let _ = writeln!(o, "source    {}", s.origin);
    let _ = writeln!(o, "schema    {schema}, zone `{}`", s.zone);
    let _ = writeln!(o, "carbon    {}", view.carbon_source);
    let _ = writeln!(
        o,
        "taken at  {} (snapshot age {:.0} s)",
        s.taken_at.to_rfc3339(),
        s.age_s(view.now)
    );
    let oldest = s
        .clusters
        .values()
        .flat_map(|c| c.nodes.values())
        .filter_map(|n| n.total_watts.sample())
        .map(|x| (view.now - x.at).as_seconds_f64())
        .fold(0.0_f64, f64::max);
    let q = &s.quality;
    let _ = writeln!(
        o,
        "data      oldest node sample {oldest:.0} s old; {} stale and {} missing readings; {} NaN and {} negative samples dropped",
        q.stale_readings, q.missing_readings, q.dropped_nan, q.dropped_negative
    );
    for note in &q.notes {
        let _ = writeln!(o, "note      {note}");
    }

    let _ = writeln!(
        o,
        "\n{:<10} {:>5} {:>10} {:>10} {:>10} {:>6} {:>10} {:>10}",
        "CLUSTER", "NODES", "TOTAL W", "IDLE W", "ACTIVE W", "ZONE", "gCO2e/kWh", "gCO2e/h"
    );
    for (name, c) in &s.clusters {
        let (total, missing) = c.total_watts();
        let carbon = view.carbon.get(name);
        let g = carbon.and_then(|c| c.g_per_kwh);
        let _ = writeln!(
            o,
            "{:<10} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>6} {:>10} {:>10}{}",
            name,
            c.nodes.len(),
            total,
            c.idle_watts().0,
            c.active_watts().0,
            carbon.and_then(|c| c.zone.clone()).unwrap_or("-".into()),
            g.map_or("-".into(), |g| format!("{g:.0}")),
            g.map_or("-".into(), |g| format!("{:.0}", total / 1000.0 * g)),
            if missing > 0 {
                format!("  ({missing} node(s) without data)")
            } else {
                String::new()
            }
        );
    }
    for (name, c) in view.carbon.iter() {
        if let Some(why) = &c.unknown_because {
            let _ = writeln!(o, "  carbon of `{name}` unknown: {why}");
        }
    }

    let _ = writeln!(
        o,
        "\n{:<10} {:<28} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "CLUSTER", "NODE", "TOTAL W", "IDLE W", "ACTIVE W", "CPU", "GPU W"
    );
    for (cname, c) in &s.clusters {
        for (n, p) in &c.nodes {
            let _ = writeln!(
                o,
                "{:<10} {:<28} {:>9} {:>9} {:>9} {:>6} {:>8}",
                cname,
                n,
                watts(&p.total_watts),
                watts(&p.idle_watts),
                watts(&p.active_watts),
                ratio(&p.cpu_usage_ratio),
                p.gpu_watts.as_ref().map_or("-".into(), watts)
            );
        }
    }

    let mut pods: Vec<(&str, &kepler_client::PodPower)> = s
        .clusters
        .iter()
        .flat_map(|(n, c)| c.pods.iter().map(move |p| (n.as_str(), p)))
        .collect();
    pods.sort_by(|a, b| {
        let w = |p: &kepler_client::PodPower| p.watts.last_known().unwrap_or(-1.0);
        w(b.1).total_cmp(&w(a.1))
    });
    let _ = writeln!(
        o,
        "\nTOP {} PODS of {}\n{:<10} {:<12} {:<40} {:<28} {:>8}",
        top.min(pods.len()),
        pods.len(),
        "CLUSTER",
        "NAMESPACE",
        "POD",
        "NODE",
        "WATTS"
    );
    for (c, p) in pods.iter().take(top) {
        let _ = writeln!(
            o,
            "{:<10} {:<12} {:<40} {:<28} {:>8}",
            c,
            p.namespace,
            p.pod,
            p.node,
            watts(&p.watts)
        );
    }
    let _ = write!(
        o,
        "\nW: power in zone `{}` (a zone is read alone, never summed with others). \
         IDLE is the node's power at rest; pods are attributed ACTIVE power only. \
         gCO2e/h = TOTAL W / 1000 x grid intensity of the cluster's zone at the snapshot time. \
         GPU W is reported apart and not included in TOTAL W. {}- = no data.",
        s.zone,
        if s.stale_after_s.is_finite() {
            format!("* = stale (older than {} s), ", s.stale_after_s)
        } else {
            String::new()
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::training::ExportArgs;
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TelemetryArgs,
    }

    fn export(argv: &[&str]) -> Result<ExportArgs, clap::Error> {
        let mut full = vec!["x", "export-training-data"];
        full.extend(argv);
        match Cli::try_parse_from(full)?.args.command {
            Some(TelemetryCommand::ExportTrainingData(a)) => Ok(a),
            None => panic!("no subcommand parsed"),
        }
    }

    #[test]
    fn subcommand_parses_with_shared_connection_flags() {
        let a = export(&[
            "--prometheus",
            "http://p:9090",
            "--from",
            "2020-03-02T00:00:00Z",
            "--to",
            "2020-03-02T03:00:00+01:00",
            "--step",
            "5m",
            "--zone",
            "psys",
            "--thanos-dedup",
            "--max-watts",
            "std-x86=310",
            "--cpu-cores-query",
            "none",
        ])
        .unwrap();
        assert_eq!(a.connection.config(&a.prometheus).zone.0, "psys");
        assert_eq!(
            a.connection.config(&a.prometheus).endpoint.thanos_dedup,
            Some(true)
        );
        let spec = a.export().unwrap();
        assert_eq!((spec.step_s, spec.window()), (300, 300));
        assert_eq!(spec.to.to_rfc3339(), "2020-03-02T02:00:00+00:00");
        assert!(spec.cpu_cores.is_none());
        assert_eq!(spec.max_watts["std-x86"], 310.0);
        assert_eq!(a.output, "-");
        assert!(export(&["--prometheus", "http://p", "--from", "2020-03-02"]).is_err());
        // The fleet view keeps working without the subcommand.
        let demo = Cli::try_parse_from(["x", "--demo"]).unwrap().args;
        assert!(demo.demo && demo.command.is_none());
        assert!(
            Cli::try_parse_from(["x"]).is_err(),
            "--prometheus or --demo"
        );
    }

    #[tokio::test]
    async fn demo_shows_every_cluster_with_carbon() {
        let cli = Cli::parse_from(["x", "--demo"]);
        let view = collect(&cli.args).await.unwrap();
        assert_eq!(view.snapshot.clusters.len(), 3);
        let fr = view.carbon["fr"].g_per_kwh.unwrap();
        let de = view.carbon["de"].g_per_kwh.unwrap();
        assert!(fr < de, "French grid is cleaner: {fr} vs {de}");
        let table = render_table(&view, 5);
        assert!(table.contains("TOP 5 PODS"), "{table}");
        assert!(table.contains("gCO2e/h = TOTAL W"));
    }

    #[tokio::test]
    async fn unknown_zone_and_cluster_are_explained() {
        let cli = Cli::parse_from(["x", "--demo", "--at", "2026-01-01T00:00:00Z"]);
        let view = collect(&cli.args).await.unwrap();
        let why = view.carbon["de"].unknown_because.clone().unwrap();
        assert!(why.contains("DE"), "{why}");
        let cli = Cli::parse_from(["x", "--demo", "--cluster", "xx"]);
        let err = collect(&cli.args).await.unwrap_err().to_string();
        assert!(err.contains("de, fr, gb"), "{err}");
    }
}
