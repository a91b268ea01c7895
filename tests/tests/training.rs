//! `export-training-data` against a real Prometheus holding backfilled Kepler history of the
//! simulated fleet: every row matches the fleet's own utilisation and power, gaps stay empty
//! and are counted, and stores that cannot give the model's features fail clearly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, TimeZone, Utc};
use kepler_client::prom::Endpoint;
use kepler_client::simulated::{SimZone, history_openmetrics, node_history_openmetrics};
use kepler_client::training::{
    CSV_HEADER, NodeQuery, TrainingExport, TrainingRow, UNKNOWN_NODE_TYPE,
};
use kepler_client::{
    KeplerSchema, PrometheusConfig, PrometheusSource, SimulatedFleet, TelemetryError,
    TrainingError, export_training_data, training_rows,
};
use tests::prometheus::PrometheusServer;

/// A node whose series lose the node-type label.
const UNTYPED: &str = "gb-arm-eff-0";
/// A node without a kube-state-metrics CPU capacity series.
const CORELESS: &str = "fr-arm-eff-1";
/// A node whose usage-ratio samples are missing for ten minutes.
const GAPPY: &str = "de-std-x86-0";

fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs().max(1e-9)
}

fn source(url: String, schema: Option<KeplerSchema>) -> PrometheusSource {
    PrometheusSource::new(PrometheusConfig {
        endpoint: Endpoint {
            url,
            timeout_s: 10.0,
            retries: 1,
            backoff_ms: 50,
            ..Endpoint::default()
        },
        schema,
        ..PrometheusConfig::default()
    })
    .unwrap()
}

/// Kepler node history with the test's defects: no node type on `UNTYPED`, no usage ratio
/// for `GAPPY` from `gap.0` to `gap.1` (inclusive, unix seconds).
fn kepler_history(
    fleet: &SimulatedFleet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    gap: (i64, i64),
) -> String {
    let text = node_history_openmetrics(
        fleet,
        KeplerSchema::V010,
        "cluster",
        &[SimZone::Package],
        from,
        to,
        60,
    );
    let untyped_label = format!(",node_kubernetes_io_instance_type=\"{}\"", "arm-eff");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let node_is = |n: &str| line.contains(&format!("node_name=\"{n}\""));
        if line.starts_with("kepler_node_cpu_usage_ratio{") && node_is(GAPPY) {
            let ts: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            if (gap.0..=gap.1).contains(&ts) {
                continue;
            }
        }
        if node_is(UNTYPED) {
            out.push_str(&line.replace(&untyped_label, ""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// kube-state-metrics' CPU capacity of every node but `CORELESS`, every minute.
fn cores_history(fleet: &SimulatedFleet, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let mut out = String::from(
        "# HELP kube_node_status_capacity The capacity for different resources of a node.\n\
         # TYPE kube_node_status_capacity gauge\n",
    );
    for n in fleet.nodes.iter().filter(|n| n.name != CORELESS) {
        let cores = fleet.node_types[n.node_type].cores;
        let cluster = &fleet.clusters[n.cluster].name;
        let mut t = from.timestamp();
        while t <= to.timestamp() {
            let _ = writeln!(
                out,
                "kube_node_status_capacity{{cluster=\"{cluster}\",node=\"{}\",resource=\"cpu\",unit=\"core\"}} {cores} {t}",
                n.name
            );
            t += 60;
        }
    }
    out.push_str("# EOF\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_rows_match_the_simulated_fleet() {
    let fleet = SimulatedFleet::embedded(11);
    let from = Utc.with_ymd_and_hms(2020, 3, 2, 6, 0, 0).unwrap();
    let to = from + chrono::Duration::hours(3);
    let gap = (from.timestamp() + 60 * 60, from.timestamp() + 70 * 60);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(kepler_history(&fleet, from, to, gap))
        .backfill_openmetrics(cores_history(&fleet, from, to))
        .start()
        .await
        .unwrap();

    let mut spec = TrainingExport::new(from, to, 60);
    // Every type's nameplate maximum except the GPU type's, which stays unknown.
    for ty in fleet.node_types.iter().filter(|t| t.name != "gpu-x86") {
        spec.max_watts.insert(ty.name.clone(), ty.curve.watts(1.0));
    }
    let detected = source(prom.url(), None);
    let (rows, summary) = training_rows(&detected, &spec).await.unwrap();
    eprint!("{summary}");

    let steps = 3 * 60 + 1;
    assert_eq!(summary.schema, KeplerSchema::V010);
    assert_eq!(summary.nodes, fleet.nodes.len());
    assert_eq!(
        rows.len(),
        fleet.nodes.len() * steps,
        "one row per node and step"
    );
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.invalid_samples, 0);
    assert_eq!(summary.empty.watts, 0);
    assert_eq!(summary.empty.idle_watts, 0);
    assert_eq!(summary.empty.cpu_cores, steps as u64, "only {CORELESS}");
    let gpu_nodes = fleet
        .nodes
        .iter()
        .filter(|n| fleet.node_types[n.node_type].name == "gpu-x86")
        .count();
    assert_eq!(
        summary.empty.max_watts,
        ((gpu_nodes + 1) * steps) as u64,
        "GPU nodes and the untyped node"
    );
    // Rows 62..=70 min see only removed samples in any window; 61 min does when the window
    // is left-open (Prometheus 3).
    assert!(
        (9..=10).contains(&summary.empty.utilisation),
        "{}",
        summary.empty.utilisation
    );
    assert_eq!(
        summary.unknown_type_nodes.iter().collect::<Vec<_>>(),
        [&format!("gb/{UNTYPED}")]
    );
    assert!(summary.to_string().contains("empty cells"), "{summary}");

    let index: HashMap<&str, usize> = fleet
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut states_at: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    let mut prev: Option<(i64, String, String)> = None;
    for row in &rows {
        let key = (
            row.timestamp.timestamp(),
            row.cluster.clone(),
            row.node.clone(),
        );
        assert!(
            prev.as_ref().is_none_or(|p| *p < key),
            "ordered by time, cluster, node"
        );
        prev = Some(key);
        let t = row.timestamp.timestamp();
        assert_eq!((t - from.timestamp()) % 60, 0);
        let i = index[row.node.as_str()];
        let node = &fleet.nodes[i];
        let ty = &fleet.node_types[node.node_type];
        assert_eq!(row.cluster, fleet.clusters[node.cluster].name);
        let truth = states_at
            .entry(t)
            .or_insert_with(|| fleet.node_states(row.timestamp))[i];

        let watts = row.watts.unwrap();
        let want = truth.zone_watts(SimZone::Package);
        assert!(
            within(watts, want, 0.01),
            "{}@{t}: {watts} W vs {want} W",
            row.node
        );
        let idle = row.idle_watts.unwrap();
        assert!(
            within(idle, truth.package_idle_watts, 0.01),
            "{}: idle {idle}",
            row.node
        );
        let in_gap = row.node == GAPPY && (gap.0 + 120..=gap.1).contains(&t);
        let outside_gap = !(row.node == GAPPY && (gap.0..=gap.1 + 60).contains(&t));
        match row.utilisation {
            Some(u) => {
                assert!(!in_gap, "{}@{t}: usage from removed samples", row.node);
                assert!(
                    within(u, truth.usage_ratio, 0.01),
                    "{}@{t}: usage {u} vs {}",
                    row.node,
                    truth.usage_ratio
                );
            }
            None => assert!(!outside_gap, "{}@{t}: usage missing", row.node),
        }
        if row.node == UNTYPED {
            assert_eq!(row.node_type, UNKNOWN_NODE_TYPE);
            assert_eq!(row.max_watts, None);
        } else {
            assert_eq!(row.node_type, ty.name);
            let max = (ty.name != "gpu-x86").then(|| ty.curve.watts(1.0));
            assert_eq!(row.max_watts, max);
        }
        let cores = (row.node != CORELESS).then_some(ty.cores);
        assert_eq!(row.cpu_cores, cores, "{}", row.node);
    }

    // The CSV: the exact header, then the same rows, each as `record()` renders it.
    let mut csv = Vec::new();
    let written = export_training_data(&detected, &spec, &mut csv)
        .await
        .unwrap();
    assert_eq!(written, summary);
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,cluster,node,node_type,cpu_cores,idle_watts,max_watts,utilisation,watts")
    );
    assert_eq!(Some(CSV_HEADER.join(",").as_str()), text.lines().next());
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), rows.len());
    for (line, row) in body.iter().zip(&rows) {
        assert_eq!(*line, row.record().join(","));
    }
    let gappy: Vec<&&str> = body
        .iter()
        .filter(|l| l.starts_with("2020-03-02T07:05:00Z,de,de-std-x86-0,std-x86,32,"))
        .collect();
    assert_eq!(gappy.len(), 1);
    let cells: Vec<&str> = gappy[0].split(',').collect();
    assert_eq!(cells[7], "", "missing usage is an empty cell, never 0");

    // Chunks of 7 steps, a 60 s window and no cpu-cores source: the same rows, no gap or
    // overlap at chunk edges, and `cpu_cores` empty and explained.
    let mut small = TrainingExport::new(from, from + chrono::Duration::minutes(30), 60);
    small.cpu_cores = None;
    small.window_s = Some(60);
    small.chunk_steps = Some(7);
    let (rows2, s2) = training_rows(&detected, &small).await.unwrap();
    assert_eq!(rows2.len(), fleet.nodes.len() * 31);
    assert_eq!(s2.empty.cpu_cores, rows2.len() as u64);
    assert!(
        s2.notes.iter().any(|n| n.contains("cpu_cores")),
        "{:?}",
        s2.notes
    );
    let expected: Vec<TrainingRow> = rows[..rows2.len()]
        .iter()
        .map(|r| TrainingRow {
            cpu_cores: None,
            max_watts: None,
            ..r.clone()
        })
        .collect();
    assert_eq!(rows2, expected);

    // A range without data fails and names the metric, rather than writing an empty file.
    let before = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
    let forced = source(prom.url(), Some(KeplerSchema::V010));
    let empty = TrainingExport::new(before, before + chrono::Duration::hours(1), 60);
    let err = training_rows(&forced, &empty).await.unwrap_err();
    assert!(
        matches!(&err, TrainingError::Telemetry(TelemetryError::MissingMetric { metric, .. }) if metric == "kepler_node_cpu_watts{zone=\"package\"}"),
        "{err}"
    );
    let err = training_rows(&detected, &empty).await.unwrap_err();
    assert!(
        matches!(
            err,
            TrainingError::Telemetry(TelemetryError::NoKeplerMetrics { .. })
        ),
        "{err}"
    );
    // A user's cores query that Prometheus rejects is an error, not an empty column.
    let mut bad = small.clone();
    bad.cpu_cores = Some(NodeQuery {
        query: "kube_node_status_capacity{".into(),
        node_label: "node".into(),
    });
    let err = training_rows(&detected, &bad).await.unwrap_err();
    assert!(
        err.to_string().contains("kube_node_status_capacity{"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kepler_v07_store_is_refused_for_lack_of_a_usage_ratio() {
    let fleet = SimulatedFleet::embedded(11);
    let from = Utc.with_ymd_and_hms(2020, 3, 2, 6, 0, 0).unwrap();
    let to = from + chrono::Duration::hours(1);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(history_openmetrics(
            &fleet,
            KeplerSchema::V07,
            "cluster",
            &[SimZone::Package],
            from,
            to,
            120,
        ))
        .start()
        .await
        .unwrap();
    let spec = TrainingExport::new(from, to, 60);
    let mut csv = Vec::new();
    let err = export_training_data(&source(prom.url(), None), &spec, &mut csv)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TrainingError::NoUsageRatio {
                schema: KeplerSchema::V07
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("v0.7") && msg.contains("kepler_node_cpu_usage_ratio"),
        "{msg}"
    );
    assert!(
        csv.is_empty(),
        "nothing written before the schema is known to work"
    );
}
