//! Deterministic generation of the recorded Kepler response bodies.

use std::fmt::Write as _;

use kepler_client::schema::{MetricSpec, Role};

use super::*;

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
pub(crate) struct Fleet {
    shape: FleetShape,
    nodes: Vec<NodeFx>,
}

impl Fleet {
    pub(crate) fn new(shape: FleetShape) -> Self {
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
    pub(crate) fn v010(&self, spec: &MetricSpec, body: &mut BodyWriter) {
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
    pub(crate) fn v07(&self, spec: &MetricSpec, body: &mut BodyWriter) {
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
pub(crate) struct BodyWriter {
    out: String,
    pub(crate) series: usize,
}

impl BodyWriter {
    pub(crate) fn new() -> Self {
        Self {
            out: String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#),
            series: 0,
        }
    }

    /// Appends one series; labels are sorted by name first, as Prometheus sorts them.
    /// Label values are plain ASCII without quotes or backslashes, so need no escaping.
    pub(crate) fn series(
        &mut self,
        labels: &mut [(&str, &str)],
        samples: impl Iterator<Item = (i64, f64)>,
    ) {
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

    pub(crate) fn finish(mut self) -> Vec<u8> {
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
        assert_eq!(a.responses[0].body.bytes(), b.responses[0].body.bytes());
        let body = std::str::from_utf8(a.responses[0].body.bytes()).unwrap();
        assert!(body.starts_with(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"kepler_node_cpu_watts","cluster":"#
        ));
        assert_eq!(a.responses[0].series, 10 * 2);
        let v: serde_json::Value = serde_json::from_slice(a.responses[5].body.bytes()).unwrap();
        let first = &v["data"]["result"][0];
        assert_eq!(
            first["values"].as_array().unwrap().len(),
            SAMPLES_PER_SERIES
        );
        assert_eq!(first["metric"].as_object().unwrap().len(), 16);
    }
}
