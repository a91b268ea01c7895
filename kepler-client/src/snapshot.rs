//! A timestamped picture of the fleet's power: per cluster, per node, per pod.
//!
//! Every value carries the time it was sampled; stale and missing values are explicit
//! variants of [`Reading`], never a silent zero.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::schema::KeplerSchema;

/// One measured value and when it was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// The value (watts, or a 0..=1 ratio).
    pub value: f64,
    /// When the value was sampled.
    pub at: DateTime<Utc>,
}

/// A value as the snapshot knows it: fresh, stale (older than the staleness threshold),
/// or missing (no series for it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reading {
    /// Sampled within the staleness threshold.
    Fresh(Sample),
    /// Sampled, but longer ago than the staleness threshold.
    Stale(Sample),
    /// No sample at all.
    Missing,
}

impl Reading {
    /// Classifies a sample as fresh or stale relative to `now`.
    pub fn classify(sample: Option<Sample>, now: DateTime<Utc>, stale_after_s: f64) -> Self {
        match sample {
            None => Self::Missing,
            Some(s) if (now - s.at).as_seconds_f64() > stale_after_s => Self::Stale(s),
            Some(s) => Self::Fresh(s),
        }
    }

    /// The value only when it is fresh.
    pub fn fresh(&self) -> Option<f64> {
        match self {
            Self::Fresh(s) => Some(s.value),
            _ => None,
        }
    }

    /// The last known value, fresh or stale.
    pub fn last_known(&self) -> Option<f64> {
        match self {
            Self::Fresh(s) | Self::Stale(s) => Some(s.value),
            Self::Missing => None,
        }
    }

    /// The sample, fresh or stale.
    pub fn sample(&self) -> Option<Sample> {
        match self {
            Self::Fresh(s) | Self::Stale(s) => Some(*s),
            Self::Missing => None,
        }
    }

    /// Whether there is no sample at all.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }

    /// Whether the sample is older than the staleness threshold.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Stale(_))
    }
}

/// Power of one node in the configured zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePower {
    /// Total power (idle + active), watts.
    pub total_watts: Reading,
    /// Idle power, watts.
    pub idle_watts: Reading,
    /// Active (dynamic) power, watts.
    pub active_watts: Reading,
    /// CPU usage ratio 0..=1 (Kepler v0.10+ only; missing under v0.7).
    pub cpu_usage_ratio: Reading,
    /// GPU power, watts; `None` when the node exports no GPU metric.
    pub gpu_watts: Option<Reading>,
}

impl NodePower {
    /// A node with nothing known yet.
    pub fn empty() -> Self {
        Self {
            total_watts: Reading::Missing,
            idle_watts: Reading::Missing,
            active_watts: Reading::Missing,
            cpu_usage_ratio: Reading::Missing,
            gpu_watts: None,
        }
    }
}

/// Power attributed to one pod (active power only: idle is never attributed to workloads).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodPower {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Node the pod runs on.
    pub node: String,
    /// Attributed power, watts.
    pub watts: Reading,
}

/// Power of one cluster's nodes and pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterPower {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodePower>,
    /// Pods, sorted by (namespace, pod).
    pub pods: Vec<PodPower>,
}

impl ClusterPower {
    /// Sum of the nodes' last known total power and how many nodes had no value.
    pub fn total_watts(&self) -> (f64, usize) {
        sum_readings(self.nodes.values().map(|n| &n.total_watts))
    }

    /// Sum of the nodes' last known idle power and how many nodes had no value.
    pub fn idle_watts(&self) -> (f64, usize) {
        sum_readings(self.nodes.values().map(|n| &n.idle_watts))
    }

    /// Sum of the nodes' last known active power and how many nodes had no value.
    pub fn active_watts(&self) -> (f64, usize) {
        sum_readings(self.nodes.values().map(|n| &n.active_watts))
    }
}

fn sum_readings<'a>(it: impl Iterator<Item = &'a Reading>) -> (f64, usize) {
    it.fold((0.0, 0), |(sum, missing), r| match r.last_known() {
        Some(v) => (sum + v, missing),
        None => (sum, missing + 1),
    })
}

/// How complete and trustworthy a snapshot is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DataQuality {
    /// Samples dropped because they were NaN or infinite.
    pub dropped_nan: u64,
    /// Samples dropped because they were negative.
    pub dropped_negative: u64,
    /// Readings older than the staleness threshold.
    pub stale_readings: u64,
    /// Readings with no sample at all.
    pub missing_readings: u64,
    /// Optional metrics that had no series (e.g. GPU), and other remarks.
    pub notes: Vec<String>,
}

/// The whole fleet's power at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetSnapshot {
    /// When the snapshot was taken (the query evaluation time).
    pub taken_at: DateTime<Utc>,
    /// Where the data came from (URL and schema, or the simulator).
    pub origin: String,
    /// The Kepler schema read, when the data came from Kepler.
    pub schema: Option<KeplerSchema>,
    /// The power zone read (`package`, `psys`, ...).
    pub zone: String,
    /// Readings older than this many seconds are stale.
    pub stale_after_s: f64,
    /// Clusters by name.
    pub clusters: BTreeMap<String, ClusterPower>,
    /// Dropped, stale and missing data.
    pub quality: DataQuality,
}

impl FleetSnapshot {
    /// Seconds between `taken_at` and `now`.
    pub fn age_s(&self, now: DateTime<Utc>) -> f64 {
        (now - self.taken_at).as_seconds_f64()
    }

    /// Looks up one node.
    pub fn node(&self, cluster: &str, node: &str) -> Option<&NodePower> {
        self.clusters.get(cluster)?.nodes.get(node)
    }

    /// Number of nodes over all clusters.
    pub fn node_count(&self) -> usize {
        self.clusters.values().map(|c| c.nodes.len()).sum()
    }

    /// Number of pods over all clusters.
    pub fn pod_count(&self) -> usize {
        self.clusters.values().map(|c| c.pods.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn readings_are_classified_by_age() {
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let old = Sample {
            value: 5.0,
            at: Utc.timestamp_opt(800, 0).unwrap(),
        };
        let new = Sample {
            value: 6.0,
            at: Utc.timestamp_opt(990, 0).unwrap(),
        };
        assert_eq!(Reading::classify(Some(old), now, 90.0), Reading::Stale(old));
        assert_eq!(Reading::classify(Some(new), now, 90.0), Reading::Fresh(new));
        assert_eq!(Reading::classify(None, now, 90.0), Reading::Missing);
        assert_eq!(Reading::Stale(old).fresh(), None);
        assert_eq!(Reading::Stale(old).last_known(), Some(5.0));
    }

    #[test]
    fn cluster_sums_report_missing_nodes() {
        let at = Utc.timestamp_opt(0, 0).unwrap();
        let mut c = ClusterPower::default();
        let mut n = NodePower::empty();
        n.total_watts = Reading::Fresh(Sample { value: 100.0, at });
        c.nodes.insert("a".into(), n);
        c.nodes.insert("b".into(), NodePower::empty());
        assert_eq!(c.total_watts(), (100.0, 1));
    }
}
