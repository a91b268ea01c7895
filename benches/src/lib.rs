//! Shared fixtures for the criterion benchmarks.
//!
//! The main fixture is a deterministic *recording* of the answers that
//! [`kepler_client::PrometheusSource`] receives when it takes a snapshot: one JSON body per
//! [`MetricSpec`] of a Kepler schema, in the exact shape Prometheus 2.x returns for an
//! instant query of a range selector (`metric{..}[120s]` → `resultType: "matrix"`), for a
//! fleet of N nodes and M pods spread over several clusters. Benchmarks replay the bodies
//! through the same steps as the real source: JSON bytes → `PromqlResult` → matrix →
//! [`assemble`].
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
use std::fmt::Write as _;

use chrono::{DateTime, TimeZone, Utc};
use kepler_client::prometheus_source::assemble;
use kepler_client::schema::{KeplerSchema, MetricSpec, Role};
use kepler_client::{FleetSnapshot, PrometheusConfig};
use prometheus_http_query::error::PrometheusError;
use prometheus_http_query::response::{Data, PromqlResult, RangeVector};
use serde::Deserialize;

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
    pub body: Vec<u8>,
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
    /// The body is not a Prometheus API response.
    #[error("`{query}`: malformed response: {source}")]
    Json {
        /// The query whose body failed.
        query: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Prometheus answered `status: error`.
    #[error("`{query}`: {source}")]
    Prometheus {
        /// The query that failed.
        query: String,
        /// The error Prometheus reported.
        source: PrometheusError,
    },
    /// The result is not a matrix.
    #[error("`{query}`: expected a range vector (matrix)")]
    NotMatrix {
        /// The query with the wrong result type.
        query: String,
    },
    /// A required metric has no series (the real source fails the same way).
    #[error("required metric `{metric}` has no series")]
    MissingMetric {
        /// The metric.
        metric: String,
    },
}

/// The API envelope, exactly as `prometheus-http-query` (its private `ApiResponse`)
/// deserializes it, so the benchmark pays the same serde costs as the real client.
#[derive(Deserialize)]
#[serde(tag = "status")]
enum ApiResponse {
    #[serde(alias = "success")]
    Success { data: PromqlResult },
    #[serde(alias = "error")]
    Error(PrometheusError),
}

/// Parses one response body the way the real client does (`reqwest`'s `json()` is
/// `serde_json::from_slice`) and takes its matrix, as `PromClient::query_samples` does.
pub fn parse_matrix(query: &str, body: &[u8]) -> Result<Vec<RangeVector>, ResponseError> {
    let response: ApiResponse =
        serde_json::from_slice(body).map_err(|source| ResponseError::Json {
            query: query.to_string(),
            source,
        })?;
    let data = match response {
        ApiResponse::Success { data } => data.into_inner().0,
        ApiResponse::Error(source) => {
            return Err(ResponseError::Prometheus {
                query: query.to_string(),
                source,
            });
        }
    };
    match data {
        Data::Matrix(m) => Ok(m),
        // An empty result may come back typed as a vector.
        Data::Vector(v) if v.is_empty() => Ok(Vec::new()),
        _ => Err(ResponseError::NotMatrix {
            query: query.to_string(),
        }),
    }
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
                let mut body = MatrixBody::new();
                match schema {
                    KeplerSchema::V010 => fleet.v010(&spec, &mut body),
                    KeplerSchema::V07 => fleet.v07(&spec, &mut body),
                }
                let series = body.series;
                RecordedResponse {
                    spec,
                    query,
                    body: body.finish(),
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
        format!("{} (Kepler {})", self.config.endpoint.url, self.schema)
    }

    /// Parses every body into the fetched series `assemble` takes, failing like the real
    /// source when a required metric has no series.
    pub fn parse(&self) -> Result<Vec<(MetricSpec, Vec<RangeVector>)>, ResponseError> {
        self.responses
            .iter()
            .map(|r| {
                let series = parse_matrix(&r.query, &r.body)?;
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
    pub fn assemble(&self, fetched: &[(MetricSpec, Vec<RangeVector>)]) -> FleetSnapshot {
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
    use std::collections::HashMap;
    use std::mem::size_of;

    use kepler_client::schema::MetricSpec;
    use kepler_client::{FleetSnapshot, NodePower, PodPower};
    use prometheus_http_query::response::RangeVector;

    /// Bytes of a hashbrown table with `capacity` usable slots of `slot` bytes.
    fn table_bytes(capacity: usize, slot: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        let buckets = if capacity < 8 {
            capacity + 1
        } else {
            capacity / 7 * 8
        };
        buckets * (slot + 1) + 16
    }

    fn labels_bytes(m: &HashMap<String, String>) -> usize {
        table_bytes(m.capacity(), size_of::<(String, String)>())
            + m.iter()
                .map(|(k, v)| k.capacity() + v.capacity())
                .sum::<usize>()
    }

    /// Heap bytes held by parsed responses (label maps, label strings, samples).
    pub fn parsed(fetched: &[(MetricSpec, Vec<RangeVector>)]) -> usize {
        fetched
            .iter()
            .map(|(_, series)| {
                series.capacity() * size_of::<RangeVector>()
                    + series
                        .iter()
                        .map(|s| labels_bytes(s.metric()) + size_of_val(s.samples()))
                        .sum::<usize>()
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

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `z`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of an entity index and a stream tag (which attribute is being drawn).
fn hash(index: usize, stream: u64) -> u64 {
    mix(mix(index as u64) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// A deterministic draw in `[0, 1)`.
fn unit(index: usize, stream: u64) -> f64 {
    (hash(index, stream) >> 11) as f64 / (1u64 << 53) as f64
}

/// `len` characters of the Kubernetes suffix alphabet drawn from `h`.
fn k8s_chars(out: &mut String, mut h: u64, len: usize) {
    for _ in 0..len {
        out.push(K8S_ALPHABET[(h % 27) as usize] as char);
        h /= 27;
    }
}

/// Entity streams for [`hash`]/[`unit`].
mod stream {
    pub const PHASE: u64 = 1;
    pub const USAGE: u64 = 2;
    pub const IDLE: u64 = 3;
    pub const DYNAMIC: u64 = 4;
    pub const EXPORTER: u64 = 5;
    pub const UPTIME: u64 = 6;
    pub const NAMESPACE: u64 = 10;
    pub const APP: u64 = 11;
    pub const POD_ID: u64 = 12;
    pub const POD_ID2: u64 = 13;
    pub const POD_WATTS: u64 = 14;
    pub const SIDECAR: u64 = 15;
    pub const CONTAINER_ID: u64 = 16;
    pub const COMMAND: u64 = 17;
    pub const JITTER: u64 = 100;
}

/// One node of the generated fleet.
struct NodeFx {
    cluster: &'static str,
    name: String,
    /// The Kepler v0.10 scrape target, `ip:28282`.
    target: String,
    /// The Kepler DaemonSet pod on this node.
    exporter: String,
    /// Scrape phase of the node's exporter within the interval, ms.
    phase_ms: i64,
    /// Mean CPU usage ratio.
    usage: f64,
    /// Idle watts per socket.
    idle_w: f64,
    /// Dynamic watts per socket at full usage.
    dynamic_w: f64,
    /// Seconds since the exporter started (v0.7 counters start there).
    uptime_s: f64,
}

/// One pod of the generated fleet.
struct PodFx {
    node: usize,
    namespace: &'static str,
    app: &'static str,
    name: String,
    id: String,
    watts: f64,
}

/// The generated fleet: nodes up front, pods on demand.
struct Fleet {
    shape: FleetShape,
    nodes: Vec<NodeFx>,
}

impl Fleet {
    fn new(shape: FleetShape) -> Self {
        let nodes = (0..shape.nodes)
            .map(|i| {
                let c = i % shape.clusters;
                let k = i / shape.clusters;
                let (cluster, region) = CLUSTERS[c % CLUSTERS.len()];
                let ip = format!("10.{}.{}.{}", c, k / 256, k % 256);
                let mut exporter = String::from("kepler-");
                k8s_chars(&mut exporter, hash(i, stream::EXPORTER), 5);
                NodeFx {
                    cluster,
                    name: format!("ip-{}.{region}.compute.internal", ip.replace('.', "-")),
                    target: format!("{ip}:28282"),
                    exporter,
                    phase_ms: 1 + (hash(i, stream::PHASE) % 29_999) as i64,
                    usage: 0.05 + 0.9 * unit(i, stream::USAGE),
                    idle_w: 30.0 + 20.0 * unit(i, stream::IDLE),
                    dynamic_w: 80.0 + 90.0 * unit(i, stream::DYNAMIC),
                    uptime_s: 3_600.0 + 30.0 * 86_400.0 * unit(i, stream::UPTIME),
                }
            })
            .collect();
        Self { shape, nodes }
    }

    /// Sample timestamps (ms) of a target scraped with `phase_ms`, oldest first.
    fn times(phase_ms: i64) -> impl Iterator<Item = i64> {
        let start = NOW_UNIX_S * 1000 - SAMPLES_PER_SERIES as i64 * SCRAPE_INTERVAL_S * 1000;
        (0..SAMPLES_PER_SERIES as i64).map(move |s| start + phase_ms + s * SCRAPE_INTERVAL_S * 1000)
    }

    /// A ±`spread` multiplicative jitter for sample `s` of series `series`.
    fn jitter(series: usize, s: usize, spread: f64) -> f64 {
        1.0 + spread * (2.0 * unit(series, stream::JITTER + s as u64) - 1.0)
    }

    fn pod(&self, j: usize) -> PodFx {
        let namespace = NAMESPACES[(hash(j, stream::NAMESPACE) % NAMESPACES.len() as u64) as usize];
        let app_i = (hash(j, stream::APP) % APPS.len() as u64) as usize;
        let app = APPS[app_i];
        // `<app>-<replicaset hash>-<pod suffix>`; the suffix encodes `j`, so names are unique.
        let mut name = String::with_capacity(app.len() + 17);
        name.push_str(app);
        name.push('-');
        k8s_chars(
            &mut name,
            mix(app_i as u64 * 131 + namespace.len() as u64),
            10,
        );
        name.push('-');
        k8s_chars(&mut name, j as u64, 5);
        let (a, b) = (hash(j, stream::POD_ID), hash(j, stream::POD_ID2));
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        );
        let u = unit(j, stream::POD_WATTS);
        PodFx {
            node: j % self.shape.nodes,
            namespace,
            app,
            name,
            id,
            watts: 0.02 + 12.0 * u * u,
        }
    }

    /// Idle and active watts of one socket at sample `s`.
    fn socket_watts(&self, i: usize, socket: usize, s: usize) -> (f64, f64) {
        let n = &self.nodes[i];
        let series = i * 8 + socket;
        let idle = n.idle_w * Self::jitter(series, s, 0.01);
        let active = n.dynamic_w * (n.usage * Self::jitter(series + 4, s, 0.1)).min(1.0);
        (idle, active)
    }

    /// Bodies for Kepler v0.10.
    fn v010(&self, spec: &MetricSpec, body: &mut MatrixBody) {
        let metric = spec.metric.as_str();
        match spec.role {
            Role::NodeTotal | Role::NodeIdle | Role::NodeActive => {
                for (i, n) in self.nodes.iter().enumerate() {
                    for socket in 0..self.shape.sockets {
                        let path = format!("/sys/class/powercap/intel-rapl/intel-rapl:{socket}");
                        let mut labels = self.v010_target(n, metric);
                        labels.extend([("path", path.as_str()), ("zone", "package")]);
                        let samples = Self::times(n.phase_ms).enumerate().map(|(s, t)| {
                            let (idle, active) = self.socket_watts(i, socket, s);
                            let v = match spec.role {
                                Role::NodeIdle => idle,
                                Role::NodeActive => active,
                                _ => idle + active,
                            };
                            (t, v)
                        });
                        body.series(&mut labels, samples);
                    }
                }
            }
            Role::NodeUsage => {
                for (i, n) in self.nodes.iter().enumerate() {
                    let mut labels = self.v010_target(n, metric);
                    let samples = Self::times(n.phase_ms)
                        .enumerate()
                        .map(|(s, t)| (t, (n.usage * Self::jitter(i * 8 + 4, s, 0.1)).min(1.0)));
                    body.series(&mut labels, samples);
                }
            }
            Role::NodeGpu => {}
            Role::Pod => {
                for j in 0..self.shape.pods {
                    let p = self.pod(j);
                    let n = &self.nodes[p.node];
                    let mut labels = self.v010_target(n, metric);
                    labels.extend([
                        ("pod_id", p.id.as_str()),
                        ("pod_name", p.name.as_str()),
                        ("pod_namespace", p.namespace),
                        ("state", "running"),
                        ("zone", "package"),
                    ]);
                    let samples = Self::times(n.phase_ms)
                        .enumerate()
                        .map(|(s, t)| (t, p.watts * Self::jitter(j, s, 0.2)));
                    body.series(&mut labels, samples);
                }
            }
        }
    }

    /// Labels every v0.10 series of node `n` carries: name, Thanos and target labels.
    fn v010_target<'a>(&self, n: &'a NodeFx, metric: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut labels = Vec::with_capacity(18);
        labels.extend([
            ("__name__", metric),
            ("cluster", n.cluster),
            ("container", "kepler"),
            ("endpoint", "http"),
            ("instance", n.target.as_str()),
            ("job", "kepler"),
            ("namespace", "kepler"),
            ("node_name", n.name.as_str()),
            ("pod", n.exporter.as_str()),
            ("prometheus", "monitoring/k8s"),
            ("service", "kepler"),
        ]);
        labels
    }

    /// Labels every v0.7 series of node `n` carries; `instance` is relabelled to the node.
    fn v07_target<'a>(&self, n: &'a NodeFx, metric: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut labels = Vec::with_capacity(18);
        labels.extend([
            ("__name__", metric),
            ("cluster", n.cluster),
            ("container", "kepler-exporter"),
            ("endpoint", "http"),
            ("instance", n.name.as_str()),
            ("job", "kepler-exporter"),
            ("namespace", "kepler"),
            ("pod", n.exporter.as_str()),
            ("prometheus", "monitoring/k8s"),
            ("service", "kepler-exporter"),
        ]);
        labels
    }

    /// A joule counter that started `uptime_s` ago at `watts`, jittered per scrape;
    /// `reset_before` restarts it from zero before that sample.
    fn counter(
        uptime_s: f64,
        watts: f64,
        series: usize,
        reset_before: Option<usize>,
    ) -> [f64; SAMPLES_PER_SERIES] {
        let mut out = [0.0; SAMPLES_PER_SERIES];
        let mut joules = uptime_s * watts;
        for (s, slot) in out.iter_mut().enumerate() {
            if s > 0 {
                joules += watts * SCRAPE_INTERVAL_S as f64 * Self::jitter(series, s, 0.1);
            }
            if reset_before == Some(s) {
                joules = watts * 7.0;
            }
            *slot = joules;
        }
        out
    }

    /// Bodies for Kepler v0.7.
    fn v07(&self, spec: &MetricSpec, body: &mut MatrixBody) {
        let metric = spec.metric.as_str();
        match spec.role {
            Role::NodeTotal | Role::NodeIdle | Role::NodeActive => {
                let modes: &[&str] = match spec.role {
                    Role::NodeIdle => &["idle"],
                    Role::NodeActive => &["dynamic"],
                    _ => &["dynamic", "idle"],
                };
                for (i, n) in self.nodes.iter().enumerate() {
                    for socket in 0..self.shape.sockets {
                        let package = socket.to_string();
                        for mode in modes {
                            let (idle, active) = self.socket_watts(i, socket, 0);
                            let watts = if *mode == "idle" { idle } else { active };
                            let series = (i * 8 + socket) * 2 + usize::from(*mode == "idle");
                            let values = Self::counter(n.uptime_s, watts, series, None);
                            let mut labels = self.v07_target(n, metric);
                            labels.extend([
                                ("mode", *mode),
                                ("package_id", package.as_str()),
                                ("source", "intel_rapl"),
                            ]);
                            body.series(&mut labels, Self::times(n.phase_ms).zip(values));
                        }
                    }
                }
            }
            Role::NodeUsage | Role::NodeGpu => {}
            Role::Pod => {
                for j in 0..self.shape.pods {
                    let p = self.pod(j);
                    let n = &self.nodes[p.node];
                    let sidecar = hash(j, stream::SIDECAR) % 2 == 1;
                    let containers: &[&str] = if sidecar {
                        &[p.app, "istio-proxy"]
                    } else {
                        &[p.app]
                    };
                    for (ci, container) in containers.iter().enumerate() {
                        let (a, b) = (hash(j * 2 + ci, stream::CONTAINER_ID), mix(j as u64));
                        let container_id =
                            format!("{a:016x}{b:016x}{:016x}{:016x}", mix(a), mix(b));
                        let command = if ci == 1 {
                            "pilot-agent"
                        } else {
                            COMMANDS[(hash(j, stream::COMMAND) % COMMANDS.len() as u64) as usize]
                        };
                        let watts = if ci == 1 { 0.3 } else { p.watts };
                        let reset = (j % 997 == 0).then_some(2);
                        let values = Self::counter(n.uptime_s / 3.0, watts, j * 2 + ci, reset);
                        let mut labels = self.v07_target(n, metric);
                        labels.extend([
                            ("command", command),
                            ("container_id", container_id.as_str()),
                            ("container_name", container),
                            ("container_namespace", p.namespace),
                            ("mode", "dynamic"),
                            ("pod_name", p.name.as_str()),
                        ]);
                        body.series(&mut labels, Self::times(n.phase_ms).zip(values));
                    }
                }
            }
        }
    }
}

/// A Prometheus `matrix` response body under construction.
struct MatrixBody {
    out: String,
    series: usize,
}

impl MatrixBody {
    fn new() -> Self {
        Self {
            out: String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#),
            series: 0,
        }
    }

    /// Appends one series; labels are sorted by name first, as Prometheus sorts them.
    /// Label values are plain ASCII without quotes or backslashes, so need no escaping.
    fn series(&mut self, labels: &mut [(&str, &str)], samples: impl Iterator<Item = (i64, f64)>) {
        labels.sort_unstable_by_key(|l| l.0);
        let out = &mut self.out;
        if self.series > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":{"#);
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(k);
            out.push_str(r#"":""#);
            out.push_str(v);
            out.push('"');
        }
        out.push_str(r#"},"values":["#);
        for (i, (t_ms, v)) in samples.enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Prometheus' MarshalTimestamp: seconds, then `.` and three millisecond
            // digits unless they are zero; values as Go's FormatFloat(v, 'f', -1).
            let _ = write!(out, "[{}", t_ms / 1000);
            if t_ms % 1000 != 0 {
                let _ = write!(out, ".{:03}", t_ms % 1000);
            }
            let _ = write!(out, ",\"{v}\"]");
        }
        out.push_str("]}");
        self.series += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push_str("]}}");
        self.out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kepler_client::Reading;

    fn check(schema: KeplerSchema, shape: FleetShape) -> FleetSnapshot {
        let rec = Recording::kepler(schema, shape);
        let snap = rec.snapshot().unwrap();
        let expected = shape.expected();
        assert_eq!(snap.clusters.len(), 5);
        assert_eq!(snap.node_count(), shape.nodes);
        assert_eq!(snap.pod_count(), shape.pods);
        for (name, c) in &snap.clusters {
            assert_eq!(c.nodes.len(), expected.nodes[name.as_str()], "{name}");
            assert_eq!(c.pods.len(), expected.pods[name.as_str()], "{name}");
            for p in &c.pods {
                assert!(matches!(p.watts, Reading::Fresh(_)), "{p:?}");
                assert!(c.nodes.contains_key(&p.node));
            }
        }
        let q = &snap.quality;
        assert_eq!((q.dropped_nan, q.dropped_negative), (0, 0));
        assert_eq!((q.stale_readings, q.missing_readings), (0, 0));
        for c in snap.clusters.values() {
            for n in c.nodes.values() {
                let total = n.total_watts.fresh().unwrap();
                let idle = n.idle_watts.fresh().unwrap();
                let active = n.active_watts.fresh().unwrap();
                assert!(idle > 0.0 && active > 0.0);
                assert!((total - idle - active).abs() < 1e-9 * total, "{n:?}");
                assert!(n.gpu_watts.is_none());
            }
        }
        snap
    }

    #[test]
    fn v010_recording_assembles_to_every_node_and_pod() {
        let snap = check(KeplerSchema::V010, FleetShape::new(50, 1_000));
        for n in snap.clusters.values().flat_map(|c| c.nodes.values()) {
            let u = n.cpu_usage_ratio.fresh().unwrap();
            assert!((0.0..=1.0).contains(&u));
        }
        // GPU metrics are absent, which the snapshot notes.
        assert_eq!(snap.quality.notes.len(), 1, "{:?}", snap.quality.notes);
    }

    #[test]
    fn v07_recording_assembles_to_every_node_and_pod() {
        let snap = check(KeplerSchema::V07, FleetShape::new(50, 1_000));
        // Pod 0 has a counter reset; its rate is still positive.
        assert!(
            snap.clusters
                .values()
                .flat_map(|c| &c.pods)
                .all(|p| p.watts.fresh().is_some_and(|w| w > 0.0))
        );
    }

    #[test]
    fn recordings_are_deterministic_and_shaped_like_prometheus() {
        let a = Recording::kepler(KeplerSchema::V010, FleetShape::new(10, 40));
        let b = Recording::kepler(KeplerSchema::V010, FleetShape::new(10, 40));
        assert_eq!(a.responses[0].body, b.responses[0].body);
        let body = std::str::from_utf8(&a.responses[0].body).unwrap();
        assert!(body.starts_with(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"kepler_node_cpu_watts","cluster":"#
        ));
        assert_eq!(a.responses[0].series, 10 * 2);
        let v: serde_json::Value = serde_json::from_slice(&a.responses[5].body).unwrap();
        let first = &v["data"]["result"][0];
        assert_eq!(
            first["values"].as_array().unwrap().len(),
            SAMPLES_PER_SERIES
        );
        assert_eq!(first["metric"].as_object().unwrap().len(), 16);
    }

    #[test]
    fn error_bodies_are_errors() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(
            parse_matrix("q", body),
            Err(ResponseError::Prometheus { .. })
        ));
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_matrix("q", vector).unwrap().is_empty());
    }
}
