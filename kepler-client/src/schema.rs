//! The two Kepler metric schemas and the PromQL selectors each one needs.
//!
//! Kepler renamed every metric in its 2025 rewrite (v0.10). A wrong name returns zero
//! series silently, so the schema is detected from the store, never assumed.

use serde::{Deserialize, Serialize};

/// Which generation of Kepler exports the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum KeplerSchema {
    /// Kepler v0.10 and later: `kepler_node_cpu_watts{zone,node_name}`, `kepler_pod_cpu_*`.
    #[serde(rename = "v0.10")]
    V010,
    /// Kepler v0.7.x: `kepler_node_<zone>_joules_total{mode}`, `kepler_container_*`.
    #[serde(rename = "v0.7")]
    V07,
}

impl std::fmt::Display for KeplerSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V010 => "v0.10",
            Self::V07 => "v0.7",
        })
    }
}

impl std::str::FromStr for KeplerSchema {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v0.10" | "0.10" | "v010" => Ok(Self::V010),
            "v0.7" | "0.7" | "v07" => Ok(Self::V07),
            other => Err(format!(
                "unknown Kepler schema `{other}` (expected v0.10 or v0.7)"
            )),
        }
    }
}

/// The RAPL/platform power zone to read. Zones overlap (psys ⊇ package ⊇ core), so
/// exactly one is read and zones are never summed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PowerZone(pub String);

impl Default for PowerZone {
    fn default() -> Self {
        Self("package".into())
    }
}

impl PowerZone {
    /// The zone as Kepler v0.10 labels it (`zone="package"`, `zone="psys"`, ...).
    pub fn v010_label(&self) -> &str {
        match self.0.as_str() {
            "platform" => "psys",
            z => z,
        }
    }

    /// The zone as Kepler v0.7 names it inside metric names (`kepler_node_<zone>_joules_total`).
    pub fn v07_name(&self) -> &str {
        match self.0.as_str() {
            "psys" => "platform",
            z => z,
        }
    }
}

/// How a metric's raw samples turn into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// The last sample is the value (watts, ratios).
    Gauge,
    /// A joule counter: the value is its per-second rate, counter resets handled.
    Counter,
}

/// What a series contributes to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Node power in the chosen zone (idle + active).
    NodeTotal,
    /// Node idle power.
    NodeIdle,
    /// Node active (dynamic) power.
    NodeActive,
    /// Node CPU usage ratio, 0..=1.
    NodeUsage,
    /// Node GPU power.
    NodeGpu,
    /// Pod power (active only: idle is never attributed to workloads).
    Pod,
}

impl Role {
    /// Whether the snapshot cannot be built without this metric.
    pub fn required(self) -> bool {
        matches!(self, Self::NodeTotal)
    }
}

/// One metric to fetch: its name, a label filter, how to read it and what it is for.
#[derive(Debug, Clone)]
pub struct MetricSpec {
    /// What the series contributes.
    pub role: Role,
    /// The metric name.
    pub metric: String,
    /// Label matchers inside `{}` (may be empty).
    pub matchers: String,
    /// Gauge or counter.
    pub kind: MetricKind,
}

impl MetricSpec {
    /// The PromQL range selector that returns the raw samples of the last `lookback_s`.
    pub fn range_selector(&self, lookback_s: u64) -> String {
        format!("{}{{{}}}[{}s]", self.metric, self.matchers, lookback_s)
    }
}

/// Label names used to identify nodes and pods in one schema.
#[derive(Debug, Clone)]
pub struct SchemaLabels {
    /// Label holding the node name.
    pub node: String,
    /// Label holding the pod name.
    pub pod: &'static str,
    /// Label holding the pod namespace.
    pub namespace: &'static str,
}

impl KeplerSchema {
    /// Every schema, newest first: the detection order.
    pub const ALL: [KeplerSchema; 2] = [Self::V010, Self::V07];

    /// The metric whose presence identifies this schema.
    pub fn probe_metric(self, zone: &PowerZone) -> String {
        match self {
            Self::V010 => "kepler_node_cpu_watts".into(),
            Self::V07 => format!("kepler_node_{}_joules_total", zone.v07_name()),
        }
    }

    /// The default node label: `node_name` (v0.10) or the scrape target `instance` (v0.7).
    pub fn default_node_label(self) -> &'static str {
        match self {
            Self::V010 => "node_name",
            Self::V07 => "instance",
        }
    }

    /// Labels naming nodes, pods and namespaces, with the node label overridable.
    pub fn labels(self, node_label: Option<&str>) -> SchemaLabels {
        let node = node_label.unwrap_or(self.default_node_label()).to_string();
        match self {
            Self::V010 => SchemaLabels {
                node,
                pod: "pod_name",
                namespace: "pod_namespace",
            },
            Self::V07 => SchemaLabels {
                node,
                pod: "pod_name",
                namespace: "container_namespace",
            },
        }
    }

    /// The metrics a power snapshot reads in this schema and zone.
    pub fn snapshot_metrics(self, zone: &PowerZone) -> Vec<MetricSpec> {
        let spec = |role, metric: &str, matchers: String, kind| MetricSpec {
            role,
            metric: metric.to_string(),
            matchers,
            kind,
        };
        match self {
            Self::V010 => {
                let z = format!("zone=\"{}\"", zone.v010_label());
                vec![
                    spec(
                        Role::NodeTotal,
                        "kepler_node_cpu_watts",
                        z.clone(),
                        MetricKind::Gauge,
                    ),
                    spec(
                        Role::NodeIdle,
                        "kepler_node_cpu_idle_watts",
                        z.clone(),
                        MetricKind::Gauge,
                    ),
                    spec(
                        Role::NodeActive,
                        "kepler_node_cpu_active_watts",
                        z.clone(),
                        MetricKind::Gauge,
                    ),
                    spec(
                        Role::NodeUsage,
                        "kepler_node_cpu_usage_ratio",
                        String::new(),
                        MetricKind::Gauge,
                    ),
                    spec(
                        Role::NodeGpu,
                        "kepler_node_gpu_watts",
                        String::new(),
                        MetricKind::Gauge,
                    ),
                    spec(
                        Role::Pod,
                        "kepler_pod_cpu_watts",
                        format!("{z},state!=\"terminated\""),
                        MetricKind::Gauge,
                    ),
                ]
            }
            Self::V07 => {
                let node = format!("kepler_node_{}_joules_total", zone.v07_name());
                let pod = format!("kepler_container_{}_joules_total", zone.v07_name());
                vec![
                    spec(Role::NodeTotal, &node, String::new(), MetricKind::Counter),
                    spec(
                        Role::NodeIdle,
                        &node,
                        "mode=\"idle\"".into(),
                        MetricKind::Counter,
                    ),
                    spec(
                        Role::NodeActive,
                        &node,
                        "mode=\"dynamic\"".into(),
                        MetricKind::Counter,
                    ),
                    spec(
                        Role::NodeGpu,
                        "kepler_node_gpu_joules_total",
                        String::new(),
                        MetricKind::Counter,
                    ),
                    spec(
                        Role::Pod,
                        &pod,
                        "mode=\"dynamic\"".into(),
                        MetricKind::Counter,
                    ),
                ]
            }
        }
    }

    /// Joule counters for energy accounting: (node counter, pod counter), with matchers.
    pub fn energy_counters(self, zone: &PowerZone) -> (MetricSpec, MetricSpec) {
        let counter = |role, metric: String, matchers: String| MetricSpec {
            role,
            metric,
            matchers,
            kind: MetricKind::Counter,
        };
        match self {
            Self::V010 => {
                let z = format!("zone=\"{}\"", zone.v010_label());
                (
                    counter(
                        Role::NodeTotal,
                        "kepler_node_cpu_joules_total".into(),
                        z.clone(),
                    ),
                    counter(Role::Pod, "kepler_pod_cpu_joules_total".into(), z),
                )
            }
            Self::V07 => (
                counter(
                    Role::NodeTotal,
                    format!("kepler_node_{}_joules_total", zone.v07_name()),
                    String::new(),
                ),
                counter(
                    Role::Pod,
                    format!("kepler_container_{}_joules_total", zone.v07_name()),
                    "mode=\"dynamic\"".into(),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_map_between_schemas() {
        assert_eq!(PowerZone("psys".into()).v07_name(), "platform");
        assert_eq!(PowerZone("platform".into()).v010_label(), "psys");
        assert_eq!(PowerZone::default().v010_label(), "package");
    }

    #[test]
    fn v07_pods_read_dynamic_energy_only() {
        let m = KeplerSchema::V07.snapshot_metrics(&PowerZone::default());
        let pod = m.iter().find(|s| s.role == Role::Pod);
        assert_eq!(
            pod.map(|p| p.range_selector(120)),
            Some("kepler_container_package_joules_total{mode=\"dynamic\"}[120s]".to_string())
        );
    }

    #[test]
    fn schema_parses_and_prints() {
        for s in KeplerSchema::ALL {
            assert_eq!(s.to_string().parse::<KeplerSchema>(), Ok(s));
        }
        assert!("v2".parse::<KeplerSchema>().is_err());
    }
}
