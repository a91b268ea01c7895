//! Training data for the shipped power model: per node and step, Kepler's CPU usage ratio
//! and node power over a time range, as CSV for `optimizer/models/train.py`.
//!
//! Columns, in this order ([`CSV_HEADER`]):
//! `timestamp,cluster,node,node_type,cpu_cores,idle_watts,max_watts,utilisation,watts`
//!
//! - `timestamp`: RFC 3339 (UTC, whole seconds); one row per node every step of `[from, to]`.
//! - `cluster`: the configured cluster label, or the default cluster when a series lacks it;
//!   `node`: the schema's node label (`node_name` in v0.10, overridable).
//! - `node_type`: the node-type label ([`DEFAULT_NODE_TYPE_LABEL`] by default) of the node's
//!   power series; `unknown` when they do not carry it.
//! - `cpu_cores`: from a configurable PromQL query ([`DEFAULT_CPU_CORES_QUERY`], the
//!   kube-state-metrics CPU capacity, by default).
//! - `idle_watts`: the node's idle power series in the zone.
//! - `max_watts`: the node type's maximum power from a table given by the caller.
//! - `utilisation`: `kepler_node_cpu_usage_ratio`, 0..=1. Kepler v0.7 has no usage ratio (and
//!   deriving one from power would leak the target into the feature), so exporting from v0.7
//!   is an error ([`TrainingError::NoUsageRatio`]).
//! - `watts`: node power in the zone: the watts gauge where the schema has one (v0.10), else
//!   the rate of the joule counter. Sockets of the zone are added; zones are never summed.
//!
//! Gauges take the newest sample no older than the window; counters their rate over it.
//!
//! Missing data is never a zero: a row is written when the node has any Kepler value (power,
//! idle power or usage) at that step, every cell without a value is left empty, and
//! [`ExportSummary`] counts the empty cells per column and the invalid samples (NaN,
//! negative, usage ratio above 1) that were left empty. When the power or the usage ratio
//! metric has no series at all over the range, the export fails with
//! [`TelemetryError::MissingMetric`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

use crate::error::TelemetryError;
use crate::prometheus_source::PrometheusSource;
use crate::schema::KeplerSchema;

mod rows;

use rows::{Column, Plan, SeriesStats, assemble, slot};

/// The CSV header, exactly as `optimizer/models/train.py` reads it.
pub const CSV_HEADER: [&str; 9] = [
    "timestamp",
    "cluster",
    "node",
    "node_type",
    "cpu_cores",
    "idle_watts",
    "max_watts",
    "utilisation",
    "watts",
];

/// Default node-type label: Kubernetes' `node.kubernetes.io/instance-type` node label as
/// Prometheus names it once copied onto the series (`labelmap` of node meta labels).
pub const DEFAULT_NODE_TYPE_LABEL: &str = "node_kubernetes_io_instance_type";

/// Default source of `cpu_cores`: kube-state-metrics' CPU capacity per node.
pub const DEFAULT_CPU_CORES_QUERY: &str = "kube_node_status_capacity{resource=\"cpu\"}";

/// Label naming the node in [`DEFAULT_CPU_CORES_QUERY`]'s series.
pub const DEFAULT_CPU_CORES_NODE_LABEL: &str = "node";

/// `node_type` of a node whose power series lack the node-type label.
pub const UNKNOWN_NODE_TYPE: &str = "unknown";

/// Shortest default window, seconds: two samples of a 60 s scrape.
const MIN_WINDOW_S: u64 = 120;
/// Prometheus refuses more than 11 000 points per series in a range query.
const MAX_STEPS_PER_QUERY: u64 = 10_000;
/// Steps of the first chunk, before the node count is known.
const FIRST_CHUNK_STEPS: u64 = 360;
/// Points (series x steps) aimed at per query once the node count is known.
const POINTS_PER_QUERY: u64 = 500_000;

/// A PromQL query with one value per node, and the label of its series naming the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeQuery {
    /// The PromQL expression (wrapped in `max by (cluster, node)`).
    pub query: String,
    /// Label of the result naming the node (kube-state-metrics: `node`).
    pub node_label: String,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct TrainingExport {
    /// First row time (sub-seconds are dropped).
    pub from: DateTime<Utc>,
    /// Last row time at most (inclusive).
    pub to: DateTime<Utc>,
    /// Seconds between a node's rows.
    pub step_s: u64,
    /// Counter rate window and maximum gauge sample age, seconds; see [`Self::window`].
    pub window_s: Option<u64>,
    /// Label of the power series holding the node type.
    pub node_type_label: String,
    /// Source of `cpu_cores`; `None` leaves the column empty.
    pub cpu_cores: Option<NodeQuery>,
    /// Maximum power in the zone by node type, watts; other types get an empty `max_watts`.
    pub max_watts: BTreeMap<String, f64>,
    /// Steps per range query; `None` sizes chunks to the fleet (at most 10 000 steps).
    pub chunk_steps: Option<u64>,
}

impl TrainingExport {
    /// An export of `[from, to]` every `step_s` seconds with the default labels and sources.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, step_s: u64) -> Self {
        Self {
            from,
            to,
            step_s,
            window_s: None,
            node_type_label: DEFAULT_NODE_TYPE_LABEL.into(),
            cpu_cores: Some(NodeQuery {
                query: DEFAULT_CPU_CORES_QUERY.into(),
                node_label: DEFAULT_CPU_CORES_NODE_LABEL.into(),
            }),
            max_watts: BTreeMap::new(),
            chunk_steps: None,
        }
    }

    /// The window in force: `window_s`, else the step but at least 2 minutes.
    pub fn window(&self) -> u64 {
        self.window_s.unwrap_or(self.step_s.max(MIN_WINDOW_S))
    }

    fn validate(&self) -> Result<(), TrainingError> {
        let invalid = |m: String| Err(TrainingError::Invalid(m));
        if self.step_s == 0 || self.window() == 0 {
            return invalid("step and window must be at least 1 second".into());
        }
        if self.chunk_steps == Some(0) {
            return invalid("chunks must have at least one step".into());
        }
        if self.to.timestamp() < self.from.timestamp() {
            return invalid(format!(
                "`to` ({}) is before `from` ({})",
                self.to, self.from
            ));
        }
        if self.node_type_label.is_empty() {
            return invalid("the node-type label is empty".into());
        }
        if let Some((t, w)) = self
            .max_watts
            .iter()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
        {
            return invalid(format!(
                "max watts of node type `{t}` is {w}, not a positive number"
            ));
        }
        Ok(())
    }
}

/// Errors of a training-data export.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// Querying the store failed, or a required metric has no series over the range.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The schema has no CPU usage ratio, the model's main feature.
    #[error(
        "Kepler {schema} exports no CPU usage ratio, so the `utilisation` column cannot be filled: \
         training data needs `kepler_node_cpu_usage_ratio` (Kepler v0.10 and later)"
    )]
    NoUsageRatio {
        /// The detected or configured schema.
        schema: KeplerSchema,
    },
    /// The export's parameters are inconsistent.
    #[error("invalid training-data export: {0}")]
    Invalid(String),
    /// Writing a CSV record failed.
    #[error("writing the training CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Flushing the output failed.
    #[error("writing the training CSV: {0}")]
    Io(#[from] std::io::Error),
}

/// One CSV row: a node at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingRow {
    /// Step time.
    pub timestamp: DateTime<Utc>,
    /// Cluster name.
    pub cluster: String,
    /// Node name.
    pub node: String,
    /// Node type, or [`UNKNOWN_NODE_TYPE`].
    pub node_type: String,
    /// CPU cores of the node.
    pub cpu_cores: Option<f64>,
    /// Idle power in the zone, watts.
    pub idle_watts: Option<f64>,
    /// Maximum power of the node type in the zone, watts.
    pub max_watts: Option<f64>,
    /// CPU usage ratio, 0..=1.
    pub utilisation: Option<f64>,
    /// Node power in the zone, watts.
    pub watts: Option<f64>,
}

impl TrainingRow {
    /// The row as CSV fields in [`CSV_HEADER`] order; `None` becomes an empty cell.
    pub fn record(&self) -> [String; 9] {
        let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.cluster.clone(),
            self.node.clone(),
            self.node_type.clone(),
            cell(self.cpu_cores),
            cell(self.idle_watts),
            cell(self.max_watts),
            cell(self.utilisation),
            cell(self.watts),
        ]
    }
}

/// Empty cells per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmptyCells {
    /// `cpu_cores` cells left empty.
    pub cpu_cores: u64,
    /// `idle_watts` cells left empty.
    pub idle_watts: u64,
    /// `max_watts` cells left empty.
    pub max_watts: u64,
    /// `utilisation` cells left empty.
    pub utilisation: u64,
    /// `watts` cells left empty.
    pub watts: u64,
}

/// What an export wrote and what it could not fill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// Kepler schema read.
    pub schema: KeplerSchema,
    /// Power zone read.
    pub zone: String,
    /// First step.
    pub from: DateTime<Utc>,
    /// Last step at most.
    pub to: DateTime<Utc>,
    /// Seconds between steps.
    pub step_s: u64,
    /// Window in force, seconds.
    pub window_s: u64,
    /// Rows written.
    pub rows: u64,
    /// Distinct `cluster/node` pairs written.
    pub nodes: usize,
    /// Empty cells per column.
    pub empty: EmptyCells,
    /// Samples left empty because they were NaN, negative or a usage ratio above 1.
    pub invalid_samples: u64,
    /// `cluster/node` of nodes written with node type [`UNKNOWN_NODE_TYPE`].
    pub unknown_type_nodes: BTreeSet<String>,
    /// Label the node type was read from.
    pub node_type_label: String,
    /// Explanations of whole columns or series that could not be used.
    pub notes: Vec<String>,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.empty;
        writeln!(
            f,
            "wrote {} rows for {} nodes: {} .. {} every {} s (window {} s), Kepler {}, zone `{}`",
            self.rows,
            self.nodes,
            self.from.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.to.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.step_s,
            self.window_s,
            self.schema,
            self.zone
        )?;
        writeln!(
            f,
            "empty cells (no data, never zero-filled): watts {}, utilisation {}, idle_watts {}, \
             cpu_cores {}, max_watts {}",
            e.watts, e.utilisation, e.idle_watts, e.cpu_cores, e.max_watts
        )?;
        writeln!(
            f,
            "invalid samples left empty (NaN, negative, usage ratio above 1): {}",
            self.invalid_samples
        )?;
        if !self.unknown_type_nodes.is_empty() {
            let shown: Vec<&str> = self
                .unknown_type_nodes
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            let more = self.unknown_type_nodes.len() - shown.len();
            writeln!(
                f,
                "node_type `{UNKNOWN_NODE_TYPE}` for {} node(s) without the `{}` label: {}{}",
                self.unknown_type_nodes.len(),
                self.node_type_label,
                shown.join(", "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// The configured schema, else the one detected at `to`, else at `from` (a range whose end
/// has no Kepler data yet).
async fn detect(
    source: &PrometheusSource,
    spec: &TrainingExport,
) -> Result<KeplerSchema, TelemetryError> {
    match source.detect_schema(spec.to).await {
        Err(first @ TelemetryError::NoKeplerMetrics { .. }) => {
            source.detect_schema(spec.from).await.map_err(|_| first)
        }
        other => other,
    }
}

/// Runs the export chunk by chunk, handing each chunk's rows to `sink`.
async fn run_chunks(
    source: &PrometheusSource,
    spec: &TrainingExport,
    mut sink: impl FnMut(Vec<TrainingRow>) -> Result<(), TrainingError>,
) -> Result<ExportSummary, TrainingError> {
    spec.validate()?;
    let schema = detect(source, spec).await?;
    let config = source.config();
    let plan = Plan::new(config, schema, spec)?;
    let client = source.client();
    let mut summary = ExportSummary {
        schema,
        zone: config.zone.0.clone(),
        from: spec.from,
        to: spec.to,
        step_s: spec.step_s,
        window_s: spec.window(),
        rows: 0,
        nodes: 0,
        empty: EmptyCells::default(),
        invalid_samples: 0,
        unknown_type_nodes: BTreeSet::new(),
        node_type_label: spec.node_type_label.clone(),
        notes: Vec::new(),
    };
    let (from_s, to_s) = (spec.from.timestamp(), spec.to.timestamp());
    let step = spec.step_s as i64;
    let total_steps = ((to_s - from_s) / step + 1) as u64;
    let mut chunk_steps = spec
        .chunk_steps
        .unwrap_or(FIRST_CHUNK_STEPS)
        .clamp(1, MAX_STEPS_PER_QUERY);
    let mut done = 0u64;
    let mut nodes: BTreeSet<(String, String)> = BTreeSet::new();
    let mut stats = SeriesStats::default();
    while done < total_steps {
        let steps = chunk_steps.min(total_steps - done);
        let start_s = from_s + done as i64 * step;
        let (start, end) = (
            Utc.timestamp_opt(start_s, 0).single(),
            Utc.timestamp_opt(start_s + (steps as i64 - 1) * step, 0)
                .single(),
        );
        let (Some(start), Some(end)) = (start, end) else {
            return Err(TrainingError::Invalid(format!(
                "time {start_s} out of range"
            )));
        };
        let fetched = futures::future::try_join_all(plan.queries.iter().map(|q| async move {
            let series = client
                .query_range(&q.promql, start, end, spec.step_s as f64)
                .await?;
            Ok::<_, TelemetryError>((q.column, series))
        }))
        .await?;
        let rows = assemble(
            &plan,
            spec,
            (start_s, steps as usize),
            &fetched,
            &mut summary,
            &mut stats,
        );
        let chunk_nodes: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.cluster.as_str(), r.node.as_str()))
            .collect();
        nodes.extend(
            chunk_nodes
                .iter()
                .map(|(c, n)| ((*c).to_string(), (*n).to_string())),
        );
        tracing::debug!(start = %start, steps, rows = rows.len(), "training-data chunk");
        let width = chunk_nodes.len().max(1) as u64;
        sink(rows)?;
        done += steps;
        if spec.chunk_steps.is_none() {
            chunk_steps = (POINTS_PER_QUERY / width).clamp(10, MAX_STEPS_PER_QUERY);
        }
    }
    summary.nodes = nodes.len();
    finish(&plan, spec, source, &stats, &mut summary)?;
    Ok(summary)
}

/// Fails when power or usage had no series at all; explains unusable columns in notes.
fn finish(
    plan: &Plan,
    spec: &TrainingExport,
    source: &PrometheusSource,
    stats: &SeriesStats,
    summary: &mut ExportSummary,
) -> Result<(), TrainingError> {
    for q in &plan.queries {
        let required = matches!(q.column, Column::Watts | Column::Usage);
        if required && stats.series[slot(q.column)] == 0 {
            return Err(TelemetryError::MissingMetric {
                metric: q.metric.clone(),
                schema: summary.schema.to_string(),
                url: source.client().url().to_string(),
            }
            .into());
        }
        if q.column == Column::Idle && stats.series[slot(q.column)] == 0 {
            summary.notes.push(format!(
                "idle_watts: `{}` has no series over the range; column empty",
                q.metric
            ));
        }
    }
    match &spec.cpu_cores {
        None => summary
            .notes
            .push("cpu_cores: no source configured; column empty".into()),
        Some(q) if stats.cores_matched == 0 => summary.notes.push(format!(
            "cpu_cores: `{}` gave no series matching an exported node by cluster and `{}` label \
             ({} series); column empty",
            q.query,
            q.node_label,
            stats.series[slot(Column::Cores)]
        )),
        Some(_) => {}
    }
    if spec.max_watts.is_empty() {
        summary
            .notes
            .push("max_watts: no maximum power known for any node type; column empty".into());
    } else if summary.empty.max_watts > 0 {
        summary.notes.push(
            "max_watts: empty for node types without a known maximum (and for `unknown`)".into(),
        );
    }
    if stats.unlabelled > 0 {
        summary.notes.push(format!(
            "{} Kepler series lacked the node label `{}` and were ignored",
            stats.unlabelled, plan.node_label
        ));
    }
    Ok(())
}

/// Queries `[from, to]` and writes the CSV (header first) to `out`, chunk by chunk; returns
/// what was written and what was missing.
pub async fn export_training_data<W: Write>(
    source: &PrometheusSource,
    spec: &TrainingExport,
    out: W,
) -> Result<ExportSummary, TrainingError> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    let mut header = true;
    // The header goes out with the first chunk: an export refused up front writes nothing.
    let summary = run_chunks(source, spec, |rows| {
        if std::mem::take(&mut header) {
            writer.write_record(CSV_HEADER)?;
        }
        for r in rows {
            writer.write_record(r.record())?;
        }
        Ok(())
    })
    .await?;
    writer.flush()?;
    Ok(summary)
}

/// Queries `[from, to]` and returns the rows in memory, ordered by time, cluster and node.
pub async fn training_rows(
    source: &PrometheusSource,
    spec: &TrainingExport,
) -> Result<(Vec<TrainingRow>, ExportSummary), TrainingError> {
    let mut all = Vec::new();
    let summary = run_chunks(source, spec, |rows| {
        all.extend(rows);
        Ok(())
    })
    .await?;
    Ok((all, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn invalid_exports_are_refused() {
        let mut spec = TrainingExport::new(t(100), t(0), 60);
        assert!(spec.validate().is_err());
        spec.to = t(200);
        spec.step_s = 0;
        assert!(spec.validate().is_err());
        spec.step_s = 30;
        assert_eq!(spec.window(), 120);
        spec.max_watts.insert("x".into(), f64::NAN);
        assert!(spec.validate().unwrap_err().to_string().contains("`x`"));
    }
}
