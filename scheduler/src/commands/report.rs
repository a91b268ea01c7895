//! `ecoplace report`: the sustainability report of a fleet over a period (docs/reports.md).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use kepler_client::PrometheusSource;
use kepler_client::accounting::GroupBy;

use super::args::{CarbonArgs, ConnectionArgs, cluster_zones};
use crate::report::sustainability::{self, Inputs, ReportRequest};

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Self-contained HTML with SVG charts.
    Html,
    /// Markdown (charts named, not drawn).
    Md,
    /// One CSV row per group.
    Csv,
    /// Every figure as JSON.
    Json,
}

/// Arguments of `ecoplace report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Prometheus or Thanos Query base URL holding the Kepler history.
    #[arg(long)]
    pub prometheus: String,
    /// Period start (RFC 3339).
    #[arg(long)]
    pub from: DateTime<Utc>,
    /// Period end (RFC 3339).
    #[arg(long)]
    pub to: DateTime<Utc>,
    /// Grouping of the detail table: cluster, namespace, node or pod.
    #[arg(long, default_value = "cluster")]
    pub group_by: GroupBy,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Power usage effectiveness applied to every energy and carbon figure (≥ 1).
    #[arg(long, default_value_t = 1.0)]
    pub pue: f64,
    /// Window length of the time series and carbon sums, minutes.
    #[arg(long, default_value_t = 60)]
    pub step_minutes: i64,
    /// Namespaces listed in the top table.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Carbon zone of a cluster, `CLUSTER=ZONE`; repeatable.
    #[arg(long = "cluster-zone", value_name = "CLUSTER=ZONE")]
    pub cluster_zone: Vec<String>,
    /// Carbon-intensity sources.
    #[command(flatten)]
    pub carbon: CarbonArgs,
    /// How to reach and read Prometheus/Thanos.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `ecoplace report`.
pub async fn run(args: ReportArgs) -> Result<()> {
    if args.to <= args.from {
        bail!("--to {} must be after --from {}", args.to, args.from);
    }
    if !(args.pue.is_finite() && args.pue >= 1.0) {
        bail!("--pue {} must be ≥ 1 (1 = IT energy only)", args.pue);
    }
    if args.step_minutes <= 0 {
        bail!("--step-minutes must be positive");
    }
    let source = PrometheusSource::new(args.connection.config(&args.prometheus))?;
    let (carbon, carbon_description) = args.carbon.source(args.from, args.to).await?;
    let zones = cluster_zones(&args.cluster_zone)?;
    let inputs = Inputs {
        source: &source,
        carbon: carbon.as_ref(),
        cluster_zones: &zones,
        carbon_description,
    };
    let report = sustainability::build(
        &inputs,
        &ReportRequest {
            from: args.from,
            to: args.to,
            group_by: args.group_by,
            step_s: args.step_minutes * 60,
            pue: args.pue,
            top: args.top,
        },
    )
    .await?;
    let text = match args.format {
        Format::Html => report.document().html()?,
        Format::Md => report.document().markdown(),
        Format::Csv => report.csv()?,
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    match &args.output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => super::print_out(&text)?,
    }
    Ok(())
}
