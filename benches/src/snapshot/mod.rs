//! Shared fixtures for the criterion benchmarks.
//!
//! The main fixture is a deterministic *recording* of the answers that
//! [`kepler_client::PrometheusSource`] receives when it takes a snapshot: one JSON body per
//! [`MetricSpec`] of a Kepler schema, in the exact shape Prometheus 2.x returns for an
//! instant query of a range selector (`metric{..}[120s]` → `resultType: "matrix"`), for a
//! fleet of N nodes and M pods spread over several clusters. Benchmarks replay the bodies
//! through the same steps as the real source: JSON bytes →
//! [`kepler_client::matrix::MatrixBody::series`] (zero-copy series) → [`assemble`].
//!
//! What the bodies look like:
//! - Labels as a kube-prometheus + Thanos stack returns them: `__name__`, the Thanos
//!   external labels `cluster` and `prometheus`, the ServiceMonitor target labels
//!   (`container`, `endpoint`, `instance`, `job`, `namespace`, `pod`, `service`) and
//!   Kepler's own labels; sorted by name, as Prometheus sorts them.
//! - Kepler v0.10: `kepler_node_cpu_{,idle_,active_}watts{zone,path,node_name}` (one series
//!   per RAPL package, i.e. per socket), `kepler_node_cpu_usage_ratio{node_name}`,
//!   `kepler_pod_cpu_watts{pod_id,pod_name,pod_namespace,state,zone,node_name}`; GPU
//!   metrics absent (empty matrix).
//! - Kepler v0.7: `kepler_node_package_joules_total{mode,package_id,source}` counters with
//!   `instance` relabelled to the node name, `kepler_container_package_joules_total{mode,
//!   container_id,container_name,container_namespace,pod_name,command}` with one or two
//!   containers per pod (an `istio-proxy` sidecar on about half), a counter reset on
//!   about one container in a thousand; GPU metrics absent.
//! - [`SAMPLES_PER_SERIES`] samples per series: a 30 s scrape interval over the 120 s
//!   lookback, each scrape target with its own phase, timestamps and values written the
//!   way Prometheus writes them (`[1748858295.123,"87.25"]`).

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use kepler_client::TelemetryError;
use kepler_client::matrix::{MatrixBody, Series};
use kepler_client::prometheus_source::assemble;
use kepler_client::schema::{KeplerSchema, MetricSpec};
use kepler_client::{FleetSnapshot, PrometheusConfig};

mod generate;

use generate::{BodyWriter, Fleet};

/// Scrape interval of the Kepler exporters, seconds.
pub const SCRAPE_INTERVAL_S: i64 = 30;
/// Samples per series inside the 120 s lookback (120 s / 30 s scrapes).
pub const SAMPLES_PER_SERIES: usize = 4;
/// Evaluation time of every recorded query (2025-06-02T10:00:00Z), Unix seconds.
pub const NOW_UNIX_S: i64 = 1_748_858_400;

/// Cluster names (Thanos `cluster` external label) and their cloud regions.
const CLUSTERS: [(&str, &str); 5] = [
    ("prod-eu-central-1", "eu-central-1"),
    ("prod-eu-west-3", "eu-west-3"),
    ("prod-us-east-1", "us-east-1"),
    ("prod-us-west-2", "us-west-2"),
    ("prod-ap-southeast-1", "ap-southeast-1"),
];

const NAMESPACES: [&str; 24] = [
    "checkout",
    "payments",
    "catalog",
    "search",
    "recommendations",
    "identity",
    "notifications",
    "orders",
    "inventory",
    "shipping",
    "pricing",
    "reviews",
    "media",
    "analytics",
    "ml-serving",
    "data-pipeline",
    "batch-jobs",
    "gateway",
    "observability",
    "logging",
    "cert-manager",
    "ingress-nginx",
    "kube-system",
    "team-platform",
];

const APPS: [&str; 24] = [
    "api",
    "web",
    "worker",
    "frontend",
    "backend",
    "consumer",
    "producer",
    "scheduler",
    "indexer",
    "cache",
    "proxy",
    "controller",
    "exporter",
    "reconciler",
    "ingest",
    "transformer",
    "predictor",
    "renderer",
    "notifier",
    "billing-sync",
    "session-store",
    "rate-limiter",
    "feature-flags",
    "event-router",
];

const COMMANDS: [&str; 8] = [
    "java",
    "node",
    "python3",
    "nginx",
    "envoy",
    "gunicorn",
    "server",
    "redis-ser",
];

/// Characters Kubernetes uses in generated name suffixes.
const K8S_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// The size of the fleet a recording describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetShape {
    /// Clusters (values of the `cluster` label); nodes are dealt to them round-robin.
    pub clusters: usize,
    /// Nodes over all clusters.
    pub nodes: usize,
    /// Pods over all clusters; dealt to nodes round-robin.
    pub pods: usize,
    /// CPU sockets (RAPL package zones) per node; each socket is its own node series.
    pub sockets: usize,
}

impl FleetShape {
    /// The acceptance size: 5 000 nodes, 100 000 pods, 5 clusters, 2 sockets per node.
    pub const ACCEPTANCE: Self = Self::new(5_000, 100_000);
    /// A tenth of the acceptance size: 500 nodes, 10 000 pods.
    pub const SMALL: Self = Self::new(500, 10_000);

    /// `nodes` nodes and `pods` pods over 5 clusters, 2 sockets per node.
    pub const fn new(nodes: usize, pods: usize) -> Self {
        Self {
            clusters: CLUSTERS.len(),
            nodes,
            pods,
            sockets: 2,
        }
    }

    /// A short name for benchmark ids, e.g. `5000n_100000p`.
    pub fn id(&self) -> String {
        format!("{}n_{}p", self.nodes, self.pods)
    }

    /// How many nodes and pods each cluster should have in an assembled snapshot.
    pub fn expected(&self) -> Expected {
        let mut nodes = HashMap::new();
        let mut pods = HashMap::new();
        for i in 0..self.nodes {
            *nodes
                .entry(CLUSTERS[(i % self.clusters) % CLUSTERS.len()].0)
                .or_insert(0) += 1;
        }
        for j in 0..self.pods {
            let node = j % self.nodes.max(1);
            *pods
                .entry(CLUSTERS[(node % self.clusters) % CLUSTERS.len()].0)
                .or_insert(0) += 1;
        }
        Expected { nodes, pods }
    }
}

/// Counts of what a recording should assemble to, for checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Nodes per cluster name.
    pub nodes: HashMap<&'static str, usize>,
    /// Pods per cluster name.
    pub pods: HashMap<&'static str, usize>,
}

/// One recorded query: what was asked and the body Prometheus answered.
#[derive(Debug, Clone)]
pub struct RecordedResponse {
    /// The metric the query is for.
    pub spec: MetricSpec,
    /// The PromQL range selector that was sent.
    pub query: String,
    /// The response body, bytes as received over HTTP.
    pub body: MatrixBody,
    /// Series in the body.
    pub series: usize,
}

/// Recorded answers to every query of one snapshot, plus the settings to replay them.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The Kepler schema the bodies follow.
    pub schema: KeplerSchema,
    /// The fleet the bodies describe.
    pub shape: FleetShape,
    /// The source configuration the snapshot is assembled with (defaults: package zone,
    /// 120 s lookback, 60 s rate window, 90 s staleness).
    pub config: PrometheusConfig,
    /// The query evaluation time.
    pub now: DateTime<Utc>,
    /// One response per metric of [`KeplerSchema::snapshot_metrics`], in that order.
    pub responses: Vec<RecordedResponse>,
}

/// Why a recorded body could not be turned into series.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The body is not a usable matrix response (as the real source reports it).
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// A required metric has no series (the real source fails the same way).
    #[error("required metric `{metric}` has no series")]
    MissingMetric {
        /// The metric.
        metric: String,
    },
}

impl Recording {
    /// Records the answers for one snapshot of `shape` under `schema`.
    ///
    /// # Panics
    /// When the shape has pods but no nodes or clusters, more than 65 536 nodes per
    /// cluster or more than 27⁵ pods (the generated names would no longer be unique).
    pub fn kepler(schema: KeplerSchema, shape: FleetShape) -> Self {
        assert!(shape.clusters > 0 && shape.sockets > 0, "empty fleet shape");
        assert!(shape.nodes > 0 || shape.pods == 0, "pods need nodes");
        assert!(shape.nodes / shape.clusters < 65_536, "too many nodes");
        assert!(shape.pods < 27usize.pow(5), "too many pods");
        let config = PrometheusConfig {
            schema: Some(schema),
            ..PrometheusConfig::default()
        };
        let now = Utc
            .timestamp_opt(NOW_UNIX_S, 0)
            .single()
            .unwrap_or_default();
        let fleet = Fleet::new(shape);
        let responses = schema
            .snapshot_metrics(&config.zone)
            .into_iter()
            .map(|spec| {
                let query = spec.range_selector(config.lookback_s);
                let mut body = BodyWriter::new();
                match schema {
                    KeplerSchema::V010 => fleet.v010(&spec, &mut body),
                    KeplerSchema::V07 => fleet.v07(&spec, &mut body),
                }
                let series = body.series;
                RecordedResponse {
                    spec,
                    body: MatrixBody::new(
                        kepler_client::prom::redact_url(&config.endpoint.url),
                        query.as_str(),
                        body.finish(),
                    ),
                    query,
                    series,
                }
            })
            .collect();
        Self {
            schema,
            shape,
            config,
            now,
            responses,
        }
    }

    /// Total size of the response bodies, bytes.
    pub fn body_bytes(&self) -> usize {
        self.responses.iter().map(|r| r.body.len()).sum()
    }

    /// Total number of series in the response bodies.
    pub fn series(&self) -> usize {
        self.responses.iter().map(|r| r.series).sum()
    }

    /// The snapshot origin, formatted as `PrometheusSource` formats it.
    pub fn origin(&self) -> String {
        format!(
            "{} (Kepler {})",
            kepler_client::prom::redact_url(&self.config.endpoint.url),
            self.schema
        )
    }

    /// Parses every body into the fetched series `assemble` takes, failing like the real
    /// source when a required metric has no series.
    pub fn parse(&self) -> Result<Vec<(MetricSpec, Vec<Series<'_>>)>, ResponseError> {
        self.responses
            .iter()
            .map(|r| {
                let series = r.body.series()?;
                if r.spec.role.required() && series.is_empty() {
                    return Err(ResponseError::MissingMetric {
                        metric: r.spec.metric.clone(),
                    });
                }
                Ok((r.spec.clone(), series))
            })
            .collect()
    }

    /// Assembles a snapshot from already parsed series.
    pub fn assemble(&self, fetched: &[(MetricSpec, Vec<Series<'_>>)]) -> FleetSnapshot {
        assemble(&self.config, self.schema, self.origin(), self.now, fetched)
    }

    /// The whole path from bytes: parse every body, then assemble (what
    /// `PrometheusSource::snapshot` does after the HTTP round trips).
    pub fn snapshot(&self) -> Result<FleetSnapshot, ResponseError> {
        let fetched = self.parse()?;
        Ok(self.assemble(&fetched))
    }
}

/// Heap estimates of the structures a snapshot involves (allocator overhead excluded).
pub mod heap {
    use std::mem::size_of;

    use kepler_client::matrix::Series;
    use kepler_client::schema::MetricSpec;
    use kepler_client::{FleetSnapshot, NodePower, PodPower};

    /// Heap bytes held by parsed series (label vectors, labels that had to be copied
    /// because of escapes, samples). Borrowed labels point into the bodies and cost nothing.
    pub fn parsed(fetched: &[(MetricSpec, Vec<Series<'_>>)]) -> usize {
        fetched
            .iter()
            .map(|(_, series)| {
                series.capacity() * size_of::<Series<'_>>()
                    + series.iter().map(Series::heap_bytes).sum::<usize>()
            })
            .sum()
    }

    /// Heap bytes held by a snapshot (B-tree nodes counted at their entries' size).
    pub fn snapshot(s: &FleetSnapshot) -> usize {
        let node = size_of::<String>() + size_of::<NodePower>();
        s.clusters
            .iter()
            .map(|(name, c)| {
                name.capacity()
                    + c.nodes.len() * node
                    + c.nodes.keys().map(String::capacity).sum::<usize>()
                    + c.pods.capacity() * size_of::<PodPower>()
                    + c.pods
                        .iter()
                        .map(|p| p.namespace.capacity() + p.pod.capacity() + p.node.capacity())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + s.origin.capacity()
            + s.quality.notes.iter().map(String::capacity).sum::<usize>()
    }
}
