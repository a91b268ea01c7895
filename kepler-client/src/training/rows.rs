//! The queries of a training-data export and the pure assembly of their results into rows.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use prometheus_http_query::response::RangeVector;

use super::{ExportSummary, TrainingError, TrainingExport, TrainingRow, UNKNOWN_NODE_TYPE};
use crate::prometheus_source::PrometheusConfig;
use crate::schema::{KeplerSchema, MetricKind, MetricSpec, Role};

/// Which column a query fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Watts,
    Idle,
    Usage,
    Cores,
}

/// One range query of the export.
#[derive(Debug, Clone)]
pub(super) struct Query {
    pub(super) column: Column,
    pub(super) promql: String,
    /// Metric name, for errors.
    pub(super) metric: String,
}

/// The queries of an export and how to read their series.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) queries: Vec<Query>,
    cluster_label: String,
    default_cluster: String,
    pub(super) node_label: String,
    node_type_label: String,
    cores_node_label: String,
}

/// Label names for `by (...)`, duplicates removed.
fn by_clause(labels: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::with_capacity(labels.len());
    for l in labels {
        if !seen.contains(l) {
            seen.push(l);
        }
    }
    seen.join(", ")
}

/// `agg by (by) (...)` of a Kepler metric: the newest gauge sample within the window, or the
/// counter's per-second rate over it.
fn kepler_expr(spec: &MetricSpec, agg: &str, by: &[&str], window_s: u64) -> String {
    let selector = format!("{}{{{}}}", spec.metric, spec.matchers);
    let inner = match spec.kind {
        MetricKind::Gauge => format!("last_over_time({selector}[{window_s}s])"),
        MetricKind::Counter => format!("rate({selector}[{window_s}s])"),
    };
    format!("{agg} by ({}) ({inner})", by_clause(by))
}

impl Plan {
    pub(super) fn new(
        config: &PrometheusConfig,
        schema: KeplerSchema,
        spec: &TrainingExport,
    ) -> Result<Self, TrainingError> {
        let metrics = schema.snapshot_metrics(&config.zone);
        let find = |role| metrics.iter().find(|m| m.role == role);
        let usage = find(Role::NodeUsage).ok_or(TrainingError::NoUsageRatio { schema })?;
        let total = find(Role::NodeTotal).ok_or_else(|| {
            TrainingError::Invalid(format!("Kepler {schema} has no node power metric"))
        })?;
        let node_label = schema.labels(config.node_label.as_deref()).node;
        let c = config.cluster_label.as_str();
        let n = node_label.as_str();
        let window = spec.window();
        let kepler = |column, m: &MetricSpec, agg, by: &[&str]| Query {
            column,
            promql: kepler_expr(m, agg, by, window),
            metric: format!("{}{{{}}}", m.metric, m.matchers),
        };
        // The node type rides on the power query only: grouping the other metrics by it too
        // would split a node in two wherever one of its series lacks the label.
        let mut queries = vec![
            kepler(
                Column::Watts,
                total,
                "sum",
                &[c, n, spec.node_type_label.as_str()],
            ),
            kepler(Column::Usage, usage, "avg", &[c, n]),
        ];
        if let Some(idle) = find(Role::NodeIdle) {
            queries.push(kepler(Column::Idle, idle, "sum", &[c, n]));
        }
        let mut cores_node_label = String::new();
        if let Some(q) = &spec.cpu_cores {
            cores_node_label.clone_from(&q.node_label);
            queries.push(Query {
                column: Column::Cores,
                promql: format!("max by ({}) ({})", by_clause(&[c, &q.node_label]), q.query),
                metric: q.query.clone(),
            });
        }
        Ok(Self {
            queries,
            cluster_label: config.cluster_label.clone(),
            default_cluster: config.default_cluster.clone(),
            node_label,
            node_type_label: spec.node_type_label.clone(),
            cores_node_label,
        })
    }
}

/// Raw values of one node over a chunk, by step index.
#[derive(Debug, Clone, Default)]
struct NodeCells {
    /// Node type and the time of the newest power sample that carried it.
    node_type: Option<(String, f64)>,
    cells: Vec<[Option<f64>; 4]>,
}

/// Series counts over the export, for the summary's notes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SeriesStats {
    /// Series per column (watts, idle, usage, cores).
    pub(super) series: [u64; 4],
    /// Cores series that matched an exported node.
    pub(super) cores_matched: u64,
    /// Kepler series without the node label.
    pub(super) unlabelled: u64,
}

pub(super) fn slot(column: Column) -> usize {
    match column {
        Column::Watts => 0,
        Column::Idle => 1,
        Column::Usage => 2,
        Column::Cores => 3,
    }
}

/// Turns a chunk's query results into rows ordered by time, cluster and node. Pure.
pub(super) fn assemble(
    plan: &Plan,
    spec: &TrainingExport,
    (start_s, steps): (i64, usize),
    fetched: &[(Column, Vec<RangeVector>)],
    summary: &mut ExportSummary,
    stats: &mut SeriesStats,
) -> Vec<TrainingRow> {
    let step = spec.step_s as f64;
    let mut nodes: BTreeMap<(String, String), NodeCells> = BTreeMap::new();
    // Kepler columns first: they decide which nodes exist; cores only fill those.
    let mut ordered: Vec<&(Column, Vec<RangeVector>)> = fetched.iter().collect();
    ordered.sort_by_key(|(c, _)| *c == Column::Cores);
    for (column, series) in ordered {
        let i = slot(*column);
        let node_label = if *column == Column::Cores {
            &plan.cores_node_label
        } else {
            &plan.node_label
        };
        stats.series[i] += series.len() as u64;
        for s in series {
            let m = s.metric();
            let cluster = m.get(&plan.cluster_label).unwrap_or(&plan.default_cluster);
            let Some(node) = m.get(node_label) else {
                if *column != Column::Cores {
                    stats.unlabelled += 1;
                }
                continue;
            };
            let key = (cluster.clone(), node.clone());
            let entry = if *column == Column::Cores {
                match nodes.get_mut(&key) {
                    Some(e) => {
                        stats.cores_matched += 1;
                        e
                    }
                    None => continue,
                }
            } else {
                nodes.entry(key).or_insert_with(|| NodeCells {
                    node_type: None,
                    cells: vec![[None; 4]; steps],
                })
            };
            if *column == Column::Watts
                && let (Some(t), Some(last)) = (m.get(&plan.node_type_label), s.samples().last())
                && entry
                    .node_type
                    .as_ref()
                    .is_none_or(|(_, at)| last.timestamp() >= *at)
            {
                entry.node_type = Some((t.clone(), last.timestamp()));
            }
            for p in s.samples() {
                let k = ((p.timestamp() - start_s as f64) / step).round();
                if k < 0.0 || k >= steps as f64 {
                    continue;
                }
                let cell = &mut entry.cells[k as usize][i];
                // Added: several series of one node (a node type that changed) sum like
                // `sum by (cluster, node)` would; a NaN poisons the sum and is dropped below.
                *cell = Some(cell.unwrap_or(0.0) + p.value());
            }
        }
    }

    let mut rows = Vec::new();
    for k in 0..steps {
        let Some(timestamp) = Utc
            .timestamp_opt(start_s + k as i64 * spec.step_s as i64, 0)
            .single()
        else {
            continue;
        };
        for ((cluster, node), n) in &nodes {
            let [watts, idle, usage, cores] = n.cells[k];
            if watts.is_none() && idle.is_none() && usage.is_none() {
                continue;
            }
            let mut valid = |v: Option<f64>, max: f64| match v {
                Some(v) if v.is_finite() && (0.0..=max).contains(&v) => Some(v),
                Some(_) => {
                    summary.invalid_samples += 1;
                    None
                }
                None => None,
            };
            let node_type = match &n.node_type {
                Some((t, _)) => t.clone(),
                None => {
                    summary
                        .unknown_type_nodes
                        .insert(format!("{cluster}/{node}"));
                    UNKNOWN_NODE_TYPE.to_string()
                }
            };
            let row = TrainingRow {
                timestamp,
                cluster: cluster.clone(),
                node: node.clone(),
                cpu_cores: valid(cores, f64::INFINITY),
                idle_watts: valid(idle, f64::INFINITY),
                max_watts: spec.max_watts.get(&node_type).copied(),
                utilisation: valid(usage, 1.0),
                watts: valid(watts, f64::INFINITY),
                node_type,
            };
            let e = &mut summary.empty;
            for (v, count) in [
                (row.cpu_cores, &mut e.cpu_cores),
                (row.idle_watts, &mut e.idle_watts),
                (row.max_watts, &mut e.max_watts),
                (row.utilisation, &mut e.utilisation),
                (row.watts, &mut e.watts),
            ] {
                if v.is_none() {
                    *count += 1;
                }
            }
            summary.rows += 1;
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::{DEFAULT_NODE_TYPE_LABEL, EmptyCells};
    use chrono::DateTime;
    use std::collections::BTreeSet;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn series(labels: serde_json::Value, samples: &[(f64, &str)]) -> RangeVector {
        serde_json::from_value(serde_json::json!({ "metric": labels, "values": samples })).unwrap()
    }

    fn summary() -> ExportSummary {
        ExportSummary {
            schema: KeplerSchema::V010,
            zone: "package".into(),
            from: t(0),
            to: t(120),
            step_s: 60,
            window_s: 120,
            rows: 0,
            nodes: 0,
            empty: EmptyCells::default(),
            invalid_samples: 0,
            unknown_type_nodes: BTreeSet::new(),
            node_type_label: DEFAULT_NODE_TYPE_LABEL.into(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn v010_plan_reads_gauges_and_v07_has_no_usage_ratio() {
        let spec = TrainingExport::new(t(0), t(3600), 60);
        let cfg = PrometheusConfig::default();
        let plan = Plan::new(&cfg, KeplerSchema::V010, &spec).unwrap();
        let q: Vec<&str> = plan.queries.iter().map(|q| q.promql.as_str()).collect();
        assert_eq!(
            q[0],
            "sum by (cluster, node_name, node_kubernetes_io_instance_type) \
             (last_over_time(kepler_node_cpu_watts{zone=\"package\"}[120s]))"
        );
        assert_eq!(
            q[1],
            "avg by (cluster, node_name) (last_over_time(kepler_node_cpu_usage_ratio{}[120s]))"
        );
        assert!(q[2].contains("kepler_node_cpu_idle_watts{zone=\"package\"}"));
        assert_eq!(
            q[3],
            "max by (cluster, node) (kube_node_status_capacity{resource=\"cpu\"})"
        );
        let err = Plan::new(&cfg, KeplerSchema::V07, &spec).unwrap_err();
        assert!(matches!(err, TrainingError::NoUsageRatio { .. }));
        assert!(
            err.to_string()
                .contains("Kepler v0.7 exports no CPU usage ratio")
        );
    }

    #[test]
    fn rows_are_ordered_and_missing_or_invalid_cells_stay_empty() {
        let mut spec = TrainingExport::new(t(0), t(120), 60);
        spec.max_watts.insert("big".into(), 400.0);
        let plan = Plan::new(&PrometheusConfig::default(), KeplerSchema::V010, &spec).unwrap();
        let n = |node: &str| serde_json::json!({"cluster": "de", "node_name": node});
        let fetched = vec![
            (
                Column::Watts,
                vec![
                    series(
                        serde_json::json!({"cluster": "de", "node_name": "b",
                            "node_kubernetes_io_instance_type": "big"}),
                        &[(0.0, "200"), (60.0, "NaN"), (120.0, "210")],
                    ),
                    series(n("a"), &[(60.0, "90")]),
                    series(serde_json::json!({"cluster": "de"}), &[(0.0, "1")]),
                ],
            ),
            (
                Column::Usage,
                vec![series(n("b"), &[(0.0, "0.5"), (60.0, "1.5")])],
            ),
            (Column::Idle, vec![]),
            (
                Column::Cores,
                vec![
                    series(
                        serde_json::json!({"cluster": "de", "node": "b"}),
                        &[(0.0, "32")],
                    ),
                    series(
                        serde_json::json!({"cluster": "de", "node": "zz"}),
                        &[(0.0, "8")],
                    ),
                ],
            ),
        ];
        let (mut s, mut stats) = (summary(), SeriesStats::default());
        let rows = assemble(&plan, &spec, (0, 3), &fetched, &mut s, &mut stats);
        let keys: Vec<(i64, &str)> = rows
            .iter()
            .map(|r| (r.timestamp.timestamp(), r.node.as_str()))
            .collect();
        assert_eq!(keys, [(0, "b"), (60, "a"), (60, "b"), (120, "b")]);
        assert_eq!(
            rows[0].record(),
            [
                "1970-01-01T00:00:00Z",
                "de",
                "b",
                "big",
                "32",
                "",
                "400",
                "0.5",
                "200"
            ]
        );
        assert_eq!(rows[1].node_type, UNKNOWN_NODE_TYPE);
        assert_eq!((rows[2].watts, rows[2].utilisation), (None, None));
        assert_eq!(s.invalid_samples, 2, "NaN watts and usage 1.5");
        assert_eq!(s.rows, 4);
        assert_eq!(s.empty.idle_watts, 4);
        assert_eq!(s.empty.cpu_cores, 3);
        assert_eq!(s.empty.max_watts, 1);
        assert_eq!((s.empty.watts, s.empty.utilisation), (1, 3));
        assert_eq!(stats.unlabelled, 1);
        assert_eq!(stats.cores_matched, 1, "cores never create a node");
        assert!(s.unknown_type_nodes.contains("de/a"));
        assert!(s.to_string().contains("empty cells"), "{s}");
    }
}
