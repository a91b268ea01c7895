//! `ecoplace telemetry export-training-data`: Kepler history from Prometheus/Thanos as the
//! CSV the power model is trained from (`optimizer/models/train.py`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use kepler_client::PrometheusSource;
use kepler_client::training::{
    DEFAULT_CPU_CORES_NODE_LABEL, DEFAULT_CPU_CORES_QUERY, DEFAULT_NODE_TYPE_LABEL, NodeQuery,
    TrainingExport, export_training_data,
};

use super::args::ConnectionArgs;

/// The long help's tail: the CSV columns, where each comes from, and missing-data rules.
pub const AFTER_HELP: &str = "\
Output: CSV with exactly this header, one row per node and step from --from to --to
(inclusive), ordered by time, cluster and node:
  timestamp,cluster,node,node_type,cpu_cores,idle_watts,max_watts,utilisation,watts

  timestamp    RFC 3339, UTC, whole seconds
  cluster      the --cluster-label of the series (`local` when absent)
  node         the --node-label of the series (Kepler v0.10: `node_name`)
  node_type    the --node-type-label of the node's power series, else `unknown`
  cpu_cores    --cpu-cores-query, matched by cluster and --cpu-cores-node-label
  idle_watts   kepler_node_cpu_idle_watts in --zone
  max_watts    --max-watts TYPE=WATTS of the node's type
  utilisation  kepler_node_cpu_usage_ratio, 0..1
  watts        kepler_node_cpu_watts in --zone (sockets added; zones are never summed)

Gauges take their newest sample no older than --window; counters their rate over it.
Kepler v0.7 exports no CPU usage ratio, so exporting from v0.7 fails with an error.

Missing data is never written as zero: a row is written when the node has any Kepler value
at that step, and a cell without a value (or whose sample is NaN, negative, or a usage ratio
above 1) is left empty. A summary on stderr counts the empty cells per column. If power or
usage has no series at all over the range, the command fails and names the metric.

Example:
  ecoplace telemetry export-training-data --prometheus http://thanos-query:9090 \\
      --thanos-dedup --from 2025-06-01T00:00:00Z --to 2025-06-08T00:00:00Z --step 60s \\
      --max-watts m6i.2xlarge=310 --max-watts c7g.4xlarge=190 --output training-data.csv";

/// Arguments of `ecoplace telemetry export-training-data`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Prometheus or Thanos Query base URL.
    #[arg(long)]
    pub prometheus: String,
    /// First row time (RFC 3339, e.g. 2025-06-01T00:00:00Z).
    #[arg(long)]
    pub from: DateTime<Utc>,
    /// Last row time at most, inclusive (RFC 3339).
    #[arg(long)]
    pub to: DateTime<Utc>,
    /// Time between a node's rows: `60s`, `5m`, `1h` or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration_s)]
    pub step: u64,
    /// Counter rate window and maximum gauge sample age [default: the step, at least 2m].
    #[arg(long, value_parser = parse_duration_s)]
    pub window: Option<u64>,
    /// Where to write the CSV; `-` for standard output. A file appears only when complete.
    #[arg(long, default_value = "-", value_name = "FILE|-")]
    pub output: String,
    /// Label of Kepler's node power series holding the node type.
    #[arg(long, default_value = DEFAULT_NODE_TYPE_LABEL)]
    pub node_type_label: String,
    /// PromQL with each node's CPU cores; `none` leaves `cpu_cores` empty.
    #[arg(long, default_value = DEFAULT_CPU_CORES_QUERY, value_name = "PROMQL")]
    pub cpu_cores_query: String,
    /// Label of the --cpu-cores-query series holding the node name.
    #[arg(long, default_value = DEFAULT_CPU_CORES_NODE_LABEL)]
    pub cpu_cores_node_label: String,
    /// Maximum power of a node type in --zone, `TYPE=WATTS`; repeatable. Other types get an
    /// empty `max_watts` (train.py skips such rows).
    #[arg(long = "max-watts", value_name = "TYPE=WATTS")]
    pub max_watts: Vec<String>,
    /// How to reach and read Prometheus/Thanos.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Parses `90`, `90s`, `5m`, `1h` or `1d` into whole seconds (at least 1).
pub fn parse_duration_s(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 60s, 5m or 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit `{other}` in `{s}` (s, m, h or d)")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("`{s}` must be at least one second")),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too long")),
    }
}

/// Parses repeated `TYPE=WATTS` into a table.
pub fn parse_max_watts(entries: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut table = BTreeMap::new();
    for e in entries {
        let (ty, w) = e
            .rsplit_once('=')
            .ok_or_else(|| anyhow!("--max-watts `{e}`: expected TYPE=WATTS"))?;
        let w: f64 = w
            .trim()
            .parse()
            .with_context(|| format!("--max-watts `{e}`: `{w}` is not a number of watts"))?;
        if ty.is_empty() || !(w.is_finite() && w > 0.0) {
            bail!("--max-watts `{e}`: needs a node type and a positive number of watts");
        }
        if table.insert(ty.to_string(), w).is_some() {
            bail!("--max-watts: node type `{ty}` given twice");
        }
    }
    Ok(table)
}

impl ExportArgs {
    /// The export these arguments describe.
    pub fn export(&self) -> Result<TrainingExport> {
        let mut spec = TrainingExport::new(self.from, self.to, self.step);
        spec.window_s = self.window;
        spec.node_type_label.clone_from(&self.node_type_label);
        spec.cpu_cores = (self.cpu_cores_query.trim() != "none").then(|| NodeQuery {
            query: self.cpu_cores_query.clone(),
            node_label: self.cpu_cores_node_label.clone(),
        });
        spec.max_watts = parse_max_watts(&self.max_watts)?;
        Ok(spec)
    }
}

/// Runs the export: CSV to the output, summary to stderr.
pub async fn run(args: ExportArgs) -> Result<()> {
    let spec = args.export()?;
    let source = PrometheusSource::new(args.connection.config(&args.prometheus))?;
    let context = || format!("exporting training data from {}", args.prometheus);
    let summary = if args.output == "-" {
        let out = BufWriter::new(std::io::stdout());
        export_training_data(&source, &spec, out)
            .await
            .with_context(context)?
    } else {
        // Written next to the target and renamed when complete: a failed export leaves no
        // truncated file behind for the trainer to pick up.
        let partial = format!("{}.partial", args.output);
        let file = File::create(&partial).with_context(|| format!("creating {partial}"))?;
        let result = export_training_data(&source, &spec, BufWriter::new(file)).await;
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(anyhow::Error::new(e).context(context()));
            }
        };
        std::fs::rename(&partial, &args.output)
            .with_context(|| format!("renaming {partial} to {}", args.output))?;
        summary
    };
    let mut err = std::io::stderr().lock();
    write!(err, "{summary}")?;
    if spec.max_watts.is_empty() {
        writeln!(
            err,
            "hint: train.py skips rows without max_watts; give each node type's maximum power \
             with --max-watts TYPE=WATTS"
        )?;
    }
    if args.output != "-" {
        writeln!(err, "CSV written to {}", args.output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations_and_max_watts_are_checked() {
        assert_eq!(parse_duration_s("90"), Ok(90));
        assert_eq!(parse_duration_s("2m"), Ok(120));
        assert_eq!(parse_duration_s("1d"), Ok(86_400));
        assert!(parse_duration_s("0s").is_err());
        assert!(parse_duration_s("5w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration_s("m").is_err());
        let ok = parse_max_watts(&["a=1.5".into(), "b=c=200".into()]).unwrap();
        assert_eq!((ok["a"], ok["b=c"]), (1.5, 200.0));
        for bad in ["a", "a=x", "=5", "a=-1", "a=inf"] {
            assert!(parse_max_watts(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_max_watts(&["a=1".into(), "a=2".into()]).is_err());
    }
}
