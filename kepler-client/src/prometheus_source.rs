//! Kepler power from Prometheus or Thanos Query: schema detection and snapshot assembly.
//!
//! Every metric is read the same way: a range selector (`metric{..}[lookback]`) returns the
//! raw samples with their own timestamps, so each value knows when it was measured;
//! gauges take the last sample and joule counters their rate over a short window.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;
use crate::matrix::{MatrixBody, Series};
use crate::prom::{Endpoint, PromClient};
use crate::schema::{KeplerSchema, MetricKind, MetricSpec, PowerZone, Role};
use crate::snapshot::{
    ClusterPower, DataQuality, FleetSnapshot, NodePower, PodPower, Reading, Sample,
};
use crate::source::TelemetrySource;

/// Settings for reading Kepler from a Prometheus-compatible store.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PrometheusConfig {
    /// Where to query and how to authenticate.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Force a Kepler schema instead of detecting it.
    pub schema: Option<KeplerSchema>,
    /// Power zone to read (`package` by default; `psys` for whole-platform power).
    pub zone: PowerZone,
    /// Label that splits series by cluster (a Thanos external label).
    #[serde(alias = "cluster_label")]
    pub cluster_label: String,
    /// Cluster name for series without the cluster label.
    #[serde(alias = "default_cluster")]
    pub default_cluster: String,
    /// Label holding the node name; defaults to `node_name` (v0.10) or `instance` (v0.7).
    #[serde(alias = "node_label")]
    pub node_label: Option<String>,
    /// How far back to fetch raw samples, seconds.
    #[serde(rename = "lookbackSeconds", alias = "lookback_s")]
    pub lookback_s: u64,
    /// Window over which joule counters are turned into watts, seconds.
    #[serde(rename = "rateWindowSeconds", alias = "rate_window_s")]
    pub rate_window_s: u64,
    /// Samples older than this are reported stale, seconds.
    #[serde(rename = "staleAfterSeconds", alias = "stale_after_s")]
    pub stale_after_s: f64,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::default(),
            schema: None,
            zone: PowerZone::default(),
            cluster_label: "cluster".into(),
            default_cluster: "local".into(),
            node_label: None,
            lookback_s: 120,
            rate_window_s: 60,
            stale_after_s: 90.0,
        }
    }
}

impl PrometheusConfig {
    /// Checks the settings without touching files or the network: `(field, reason)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let url = reqwest::Url::parse(&self.endpoint.url);
        if !url.is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            return Err((
                "url",
                "must be an absolute http:// or https:// URL (e.g. http://prometheus.monitoring:9090)",
            ));
        }
        if !(self.endpoint.timeout_s.is_finite() && self.endpoint.timeout_s > 0.0) {
            return Err(("timeoutSeconds", "must be a positive number of seconds"));
        }
        if self.rate_window_s == 0 {
            return Err(("rateWindowSeconds", "must be at least 1 second"));
        }
        if self.lookback_s < self.rate_window_s {
            return Err(("lookbackSeconds", "must be at least rateWindowSeconds"));
        }
        if !(self.stale_after_s > 0.0 && self.stale_after_s < self.lookback_s as f64) {
            return Err((
                "staleAfterSeconds",
                "must be positive and below lookbackSeconds (older samples are never fetched)",
            ));
        }
        Ok(())
    }
}

/// Reads Kepler power from Prometheus or Thanos Query.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    client: PromClient,
    config: PrometheusConfig,
}

impl PrometheusSource {
    /// Builds the source (reads TLS files; does not contact the store yet).
    pub fn new(config: PrometheusConfig) -> Result<Self, TelemetryError> {
        config
            .check()
            .map_err(|(field, message)| TelemetryError::Config {
                field: field.into(),
                message: message.into(),
            })?;
        let client = PromClient::new(config.endpoint.clone())?;
        Ok(Self { client, config })
    }

    /// The query client (shared with carbon and accounting queries).
    pub fn client(&self) -> &PromClient {
        &self.client
    }

    /// The configuration in force.
    pub fn config(&self) -> &PrometheusConfig {
        &self.config
    }

    /// The configured schema, or the one whose probe metric has series at `now`.
    pub async fn detect_schema(&self, now: DateTime<Utc>) -> Result<KeplerSchema, TelemetryError> {
        if let Some(s) = self.config.schema {
            return Ok(s);
        }
        let probes: Vec<(KeplerSchema, String)> = KeplerSchema::ALL
            .iter()
            .map(|s| (*s, s.probe_metric(&self.config.zone)))
            .collect();
        let names: Vec<&str> = probes.iter().map(|(_, m)| m.as_str()).collect();
        let query = format!(
            "count by (__name__) ({{__name__=~\"{}\"}})",
            names.join("|")
        );
        let found = self.client.query_instant(&query, now).await?;
        for (schema, metric) in &probes {
            if found
                .iter()
                .any(|v| v.metric().get("__name__") == Some(metric))
            {
                return Ok(*schema);
            }
        }
        Err(TelemetryError::NoKeplerMetrics {
            url: self.client.url().to_string(),
            tried: probes
                .iter()
                .map(|(s, m)| format!("{m} (Kepler {s})"))
                .collect(),
        })
    }
}

impl PrometheusSource {
    /// The `zone` label values `metric` (a v0.10 metric) has series with in the lookback
    /// window before `at`, sorted.
    pub(crate) async fn zones_of(
        &self,
        metric: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, TelemetryError> {
        let query = format!(
            "count by (zone) (last_over_time({metric}[{}s]))",
            self.config.lookback_s
        );
        let mut zones: Vec<String> = self
            .client
            .query_instant(&query, at)
            .await?
            .iter()
            .filter_map(|v| v.metric().get("zone").cloned())
            .collect();
        zones.sort();
        zones.dedup();
        Ok(zones)
    }
}

#[async_trait]
impl TelemetrySource for PrometheusSource {
    async fn snapshot(&self, now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
        let schema = self.detect_schema(now).await?;
        let specs = schema.snapshot_metrics(&self.config.zone);
        let queries = specs.iter().map(|spec| {
            let q = spec.range_selector(self.config.lookback_s);
            async move { self.client.query_samples(&q, now).await }
        });
        let bodies = futures::future::try_join_all(queries).await?;
        let results = bodies
            .iter()
            .map(MatrixBody::series)
            .collect::<Result<Vec<_>, _>>()?;
        for (spec, series) in specs.iter().zip(&results) {
            if spec.role.required() && series.is_empty() {
                if schema == KeplerSchema::V010 {
                    let zones = self.zones_of(&spec.metric, now).await?;
                    if !zones.is_empty() {
                        return Err(TelemetryError::ZoneMissing {
                            metric: spec.metric.clone(),
                            zone: self.config.zone.v010_label().to_string(),
                            available: zones,
                            url: self.client.url().to_string(),
                        });
                    }
                }
                return Err(TelemetryError::MissingMetric {
                    metric: spec.metric.clone(),
                    schema: schema.to_string(),
                    url: self.client.url().to_string(),
                });
            }
        }
        let fetched: Vec<(MetricSpec, Vec<Series<'_>>)> = specs.into_iter().zip(results).collect();
        let origin = format!("{} (Kepler {schema})", self.client.url());
        Ok(assemble(&self.config, schema, origin, now, &fetched))
    }

    fn describe(&self) -> String {
        format!("Prometheus {}", self.client.url())
    }
}

/// Running sum of one reading: the summed value and the oldest sample time.
#[derive(Clone, Copy)]
struct Acc {
    value: f64,
    oldest_ms: i64,
}

impl Acc {
    fn add(slot: &mut Option<Acc>, value: f64, at_ms: i64) {
        match slot {
            Some(a) => {
                a.value += value;
                a.oldest_ms = a.oldest_ms.min(at_ms);
            }
            None => {
                *slot = Some(Acc {
                    value,
                    oldest_ms: at_ms,
                })
            }
        }
    }

    fn sample(slot: Option<Acc>) -> Option<Sample> {
        slot.and_then(|a| {
            Some(Sample {
                value: a.value,
                at: Utc.timestamp_millis_opt(a.oldest_ms).single()?,
            })
        })
    }
}

#[derive(Default, Clone, Copy)]
struct NodeAcc {
    total: Option<Acc>,
    idle: Option<Acc>,
    active: Option<Acc>,
    usage: Option<Acc>,
    gpu: Option<Acc>,
}

/// Turns fetched raw samples into a snapshot. Pure: no I/O, `now` is a parameter.
pub fn assemble(
    config: &PrometheusConfig,
    schema: KeplerSchema,
    origin: String,
    now: DateTime<Utc>,
    fetched: &[(MetricSpec, Vec<Series<'_>>)],
) -> FleetSnapshot {
    let labels = schema.labels(config.node_label.as_deref());
    let mut quality = DataQuality::default();
    // Keys borrow from the parsed responses: strings are copied once, into the snapshot.
    let mut nodes: HashMap<(&str, &str), NodeAcc> = HashMap::new();
    let mut pods: HashMap<(&str, &str, &str, &str), Option<Acc>> = HashMap::new();
    let mut unlabelled = 0u64;

    for (spec, series) in fetched {
        if series.is_empty() && !spec.role.required() {
            quality.notes.push(format!(
                "`{}` has no series: {} unknown",
                spec.metric,
                role_name(spec.role)
            ));
        }
        for s in series {
            let Some((value, at_ms)) = value_of(spec.kind, s, config.rate_window_s, &mut quality)
            else {
                continue;
            };
            let cluster = s
                .label(&config.cluster_label)
                .unwrap_or(&config.default_cluster);
            let Some(node) = s.label(&labels.node) else {
                unlabelled += 1;
                continue;
            };
            if spec.role == Role::Pod {
                let (Some(ns), Some(pod)) = (s.label(labels.namespace), s.label(labels.pod)) else {
                    unlabelled += 1;
                    continue;
                };
                let slot = pods.entry((cluster, node, ns, pod)).or_default();
                Acc::add(slot, value, at_ms);
                continue;
            }
            let n = nodes.entry((cluster, node)).or_default();
            let slot = match spec.role {
                Role::NodeTotal => &mut n.total,
                Role::NodeIdle => &mut n.idle,
                Role::NodeActive => &mut n.active,
                Role::NodeUsage => &mut n.usage,
                Role::NodeGpu => &mut n.gpu,
                Role::Pod => continue,
            };
            Acc::add(slot, value, at_ms);
        }
    }
    if unlabelled > 0 {
        quality.notes.push(format!(
            "{unlabelled} series lacked the node/pod labels (`{}`, `{}`, `{}`) and were ignored",
            labels.node, labels.namespace, labels.pod
        ));
    }

    let stale_after = config.stale_after_s;
    let mut by_cluster: HashMap<&str, ClusterPower> = HashMap::new();
    let classify = |acc: Option<Acc>, q: &mut DataQuality| {
        let r = Reading::classify(Acc::sample(acc), now, stale_after);
        match r {
            Reading::Missing => q.missing_readings += 1,
            Reading::Stale(_) => q.stale_readings += 1,
            Reading::Fresh(_) => {}
        }
        r
    };
    for ((cluster, node), a) in nodes {
        let power = NodePower {
            total_watts: classify(a.total, &mut quality),
            idle_watts: classify(a.idle, &mut quality),
            active_watts: classify(a.active, &mut quality),
            cpu_usage_ratio: if schema == KeplerSchema::V07 {
                Reading::Missing
            } else {
                classify(a.usage, &mut quality)
            },
            gpu_watts: a.gpu.map(|g| classify(Some(g), &mut quality)),
        };
        by_cluster
            .entry(cluster)
            .or_default()
            .nodes
            .insert(node.to_string(), power);
    }
    for ((cluster, node, namespace, pod), acc) in pods {
        let watts = classify(acc, &mut quality);
        by_cluster.entry(cluster).or_default().pods.push(PodPower {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            node: node.to_string(),
            watts,
        });
    }
    let mut clusters: BTreeMap<String, ClusterPower> = by_cluster
        .into_iter()
        .map(|(name, c)| (name.to_string(), c))
        .collect();
    for c in clusters.values_mut() {
        c.pods
            .sort_unstable_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    }
    if schema == KeplerSchema::V07 {
        quality
            .notes
            .push("Kepler v0.7 exports no CPU usage ratio".into());
    }
    FleetSnapshot {
        taken_at: now,
        origin,
        schema: Some(schema),
        zone: config.zone.0.clone(),
        stale_after_s: stale_after,
        clusters,
        quality,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::NodeTotal => "node power",
        Role::NodeIdle => "node idle power",
        Role::NodeActive => "node active power",
        Role::NodeUsage => "node CPU usage",
        Role::NodeGpu => "GPU power",
        Role::Pod => "pod power",
    }
}

/// The value of one series (and its sample time in ms): the last sample of a gauge, the
/// per-second rate of a counter over `rate_window_s` ending at its last sample. Drops
/// NaN and negative samples, counting them.
fn value_of(
    kind: MetricKind,
    series: &Series<'_>,
    rate_window_s: u64,
    quality: &mut DataQuality,
) -> Option<(f64, i64)> {
    let samples = series.samples();
    let clean = samples.iter().all(|(_, v)| v.is_finite() && *v >= 0.0);
    let filtered: Vec<(f64, f64)>;
    let valid: &[(f64, f64)] = if clean {
        samples
    } else {
        let mut kept = Vec::with_capacity(samples.len());
        for &(t, v) in samples {
            if !v.is_finite() {
                quality.dropped_nan += 1;
            } else if v < 0.0 {
                quality.dropped_negative += 1;
            } else {
                kept.push((t, v));
            }
        }
        filtered = kept;
        &filtered
    };
    let &(last_t, last_v) = valid.last()?;
    let at_ms = (last_t * 1000.0).round() as i64;
    match kind {
        MetricKind::Gauge => Some((last_v, at_ms)),
        MetricKind::Counter => {
            let window_start = last_t - rate_window_s as f64;
            let mut first = valid.partition_point(|(t, _)| *t < window_start);
            if valid.len() - first < 2 {
                first = valid.len().checked_sub(2)?;
            }
            let w = &valid[first..];
            let increase: f64 = w
                .windows(2)
                .map(|p| {
                    let d = p[1].1 - p[0].1;
                    // A counter that went down was reset: it counts from zero again.
                    if d < 0.0 { p[1].1 } else { d }
                })
                .sum();
            let dt = last_t - w[0].0;
            (dt > 0.0).then(|| (increase / dt, at_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&'static str, &'static str)], samples: &[(f64, f64)]) -> Series<'static> {
        Series::new(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            samples.to_vec(),
        )
    }

    fn spec(role: Role, kind: MetricKind) -> MetricSpec {
        MetricSpec {
            role,
            metric: "m".into(),
            matchers: String::new(),
            kind,
        }
    }

    #[test]
    fn counters_become_watts_across_a_reset() {
        let mut q = DataQuality::default();
        // 10 W for 10 s, then a reset to 0 and 10 W for 10 more seconds.
        let s = series(&[], &[(0.0, 1000.0), (10.0, 1100.0), (20.0, 100.0)]);
        let (w, at) = value_of(MetricKind::Counter, &s, 60, &mut q).unwrap();
        assert!((w - 10.0).abs() < 1e-9);
        assert_eq!(at, 20_000);
    }

    #[test]
    fn nan_and_negative_samples_are_dropped_and_counted() {
        let mut q = DataQuality::default();
        let s = series(&[], &[(0.0, 5.0), (1.0, f64::NAN), (2.0, -3.0)]);
        assert_eq!(value_of(MetricKind::Gauge, &s, 60, &mut q), Some((5.0, 0)));
        assert_eq!((q.dropped_nan, q.dropped_negative), (1, 1));
    }

    #[test]
    fn zones_from_several_sockets_add_and_clusters_split() {
        let now = Utc.timestamp_opt(100, 0).unwrap();
        let cfg = PrometheusConfig::default();
        let node = vec![
            series(
                &[("cluster", "de"), ("node_name", "n1"), ("path", "rapl:0")],
                &[(95.0, 40.0)],
            ),
            series(
                &[("cluster", "de"), ("node_name", "n1"), ("path", "rapl:1")],
                &[(99.0, 60.0)],
            ),
            series(&[("node_name", "n2")], &[(5.0, 70.0)]),
        ];
        let pods = vec![series(
            &[
                ("cluster", "de"),
                ("node_name", "n1"),
                ("pod_name", "web"),
                ("pod_namespace", "shop"),
            ],
            &[(99.0, 12.5)],
        )];
        let fetched = vec![
            (spec(Role::NodeTotal, MetricKind::Gauge), node),
            (spec(Role::Pod, MetricKind::Gauge), pods),
        ];
        let snap = assemble(&cfg, KeplerSchema::V010, "t".into(), now, &fetched);
        let n1 = snap.node("de", "n1").unwrap();
        let s = n1.total_watts.sample().unwrap();
        assert_eq!(s.value, 100.0);
        assert_eq!(s.at.timestamp(), 95, "a sum is as old as its oldest part");
        assert!(snap.node("local", "n2").unwrap().total_watts.is_stale());
        assert!(n1.idle_watts.is_missing());
        assert_eq!(snap.clusters["de"].pods[0].pod, "web");
        assert_eq!(snap.quality.stale_readings, 1);
    }
}
