//! A deterministic, seeded embedded fleet that behaves like Kepler-monitored clusters.
//!
//! Three clusters in DE, FR and GB; heterogeneous node types with non-linear power curves;
//! pods with CPU and memory requests whose usage follows a daily pattern in local time.
//! Time is always a parameter: nothing here reads the clock.

mod exposition;
mod power;

use std::collections::BTreeMap;
use std::f64::consts::PI;

use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::TelemetryError;
use crate::snapshot::{
    ClusterPower, DataQuality, FleetSnapshot, NodePower, PodPower, Reading, Sample,
};
use crate::source::TelemetrySource;

pub use exposition::{
    EnergyCounters, Family, MetricType, history_openmetrics, node_history_openmetrics, render_text,
};
pub use power::{PowerCurve, SimZone};

/// A kind of server: capacity and power behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct NodeType {
    /// Type name, e.g. `std-x86`.
    pub name: String,
    /// Allocatable CPU cores.
    pub cores: f64,
    /// Allocatable memory, GiB.
    pub memory_gib: f64,
    /// CPU sockets (package power is split evenly over them).
    pub sockets: u32,
    /// Package power curve.
    pub curve: PowerCurve,
    /// GPU idle and max watts, when the type has a GPU.
    pub gpu_watts: Option<(f64, f64)>,
}

/// A cluster of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct SimCluster {
    /// Cluster name (the `cluster` label).
    pub name: String,
    /// Grid carbon-intensity zone (`DE`, `FR`, `GB`).
    pub carbon_zone: String,
    /// Hours from UTC of the cluster's users' local time (drives the daily pattern).
    pub utc_offset_h: f64,
}

/// A node of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct SimNode {
    /// Node name.
    pub name: String,
    /// Index into [`SimulatedFleet::clusters`].
    pub cluster: usize,
    /// Index into [`SimulatedFleet::node_types`].
    pub node_type: usize,
}

/// A pod of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct SimPod {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Index into [`SimulatedFleet::nodes`].
    pub node: usize,
    /// CPU request, cores.
    pub cpu_request: f64,
    /// Memory request, GiB.
    pub memory_gib: f64,
    /// Fraction of its CPU request the pod uses at the daily peak.
    pub peak_usage: f64,
    /// Hours by which this pod's daily pattern is shifted.
    pub phase_h: f64,
    /// Container names (energy is split over them 70/30 when there are two).
    pub containers: Vec<String>,
}

/// The instantaneous state of one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeState {
    /// CPU utilisation 0..=1.
    pub usage_ratio: f64,
    /// Package power, watts.
    pub package_watts: f64,
    /// Package idle power, watts.
    pub package_idle_watts: f64,
    /// GPU power, watts, when the node has a GPU.
    pub gpu_watts: Option<f64>,
}

impl NodeState {
    /// Total power in `zone`, watts.
    pub fn zone_watts(&self, zone: SimZone) -> f64 {
        zone.watts(self.package_watts)
    }

    /// Idle power in `zone`, watts.
    pub fn zone_idle_watts(&self, zone: SimZone) -> f64 {
        zone.watts(self.package_idle_watts)
    }

    /// Active power in `zone`, watts.
    pub fn zone_active_watts(&self, zone: SimZone) -> f64 {
        zone.slope() * (self.package_watts - self.package_idle_watts)
    }
}

/// The embedded fleet.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedFleet {
    /// Seed it was generated from.
    pub seed: u64,
    /// Power zone its snapshots report.
    pub zone: String,
    /// Server types.
    pub node_types: Vec<NodeType>,
    /// Clusters.
    pub clusters: Vec<SimCluster>,
    /// Nodes.
    pub nodes: Vec<SimNode>,
    /// Pods.
    pub pods: Vec<SimPod>,
}

/// Background CPU use of the system itself (kubelet, Kepler, ...), as a utilisation ratio.
const SYSTEM_USAGE: f64 = 0.03;

/// The daily load factor at a local hour: 0.25 at 04:00, 0.95 at 16:00, smooth between.
pub fn daily_load(local_hour: f64) -> f64 {
    0.25 + 0.7 * (0.5 - 0.5 * (2.0 * PI * (local_hour - 4.0) / 24.0).cos())
}

fn hour_of_day(t: DateTime<Utc>) -> f64 {
    f64::from(t.num_seconds_from_midnight()) / 3600.0 + f64::from(t.nanosecond()) / 3.6e12
}

impl SimulatedFleet {
    /// The default fleet: 3 clusters (DE, FR, GB), 4 server types, 8 nodes per cluster.
    pub fn embedded(seed: u64) -> Self {
        let node_types = vec![
            NodeType {
                name: "std-x86".into(),
                cores: 32.0,
                memory_gib: 128.0,
                sockets: 2,
                curve: PowerCurve::from_idle_max(95.0, 310.0, 1.8),
                gpu_watts: None,
            },
            NodeType {
                name: "old-x86".into(),
                cores: 24.0,
                memory_gib: 96.0,
                sockets: 2,
                curve: PowerCurve::from_idle_max(160.0, 350.0, 0.6),
                gpu_watts: None,
            },
            NodeType {
                name: "arm-eff".into(),
                cores: 64.0,
                memory_gib: 256.0,
                sockets: 1,
                curve: PowerCurve::from_idle_max(60.0, 240.0, 1.2),
                gpu_watts: None,
            },
            NodeType {
                name: "gpu-x86".into(),
                cores: 48.0,
                memory_gib: 384.0,
                sockets: 2,
                curve: PowerCurve::from_idle_max(120.0, 380.0, 1.5),
                gpu_watts: Some((55.0, 300.0)),
            },
        ];
        let clusters = vec![
            SimCluster {
                name: "de".into(),
                carbon_zone: "DE".into(),
                utc_offset_h: 1.0,
            },
            SimCluster {
                name: "fr".into(),
                carbon_zone: "FR".into(),
                utc_offset_h: 1.0,
            },
            SimCluster {
                name: "gb".into(),
                carbon_zone: "GB".into(),
                utc_offset_h: 0.0,
            },
        ];
        // Per cluster: how many nodes of each type.
        let mix: [[usize; 4]; 3] = [[3, 3, 1, 1], [4, 2, 2, 0], [2, 4, 1, 1]];
        let namespaces = ["shop", "search", "payments", "analytics", "ml"];
        let cpu_sizes = [0.25, 0.5, 1.0, 2.0, 4.0];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for (ci, c) in clusters.iter().enumerate() {
            for (ti, count) in mix[ci].iter().enumerate() {
                for k in 0..*count {
                    let node = nodes.len();
                    nodes.push(SimNode {
                        name: format!("{}-{}-{}", c.name, node_types[ti].name, k),
                        cluster: ci,
                        node_type: ti,
                    });
                    let t = &node_types[ti];
                    let budget = t.cores * rng.random_range(0.45..0.8);
                    let mut used = 0.0;
                    let mut p = 0;
                    while used < budget {
                        let cpu = cpu_sizes[rng.random_range(0..cpu_sizes.len())];
                        used += cpu;
                        let ns = namespaces[rng.random_range(0..namespaces.len())];
                        let containers = if rng.random_bool(0.4) {
                            vec!["app".to_string(), "sidecar".to_string()]
                        } else {
                            vec!["app".to_string()]
                        };
                        pods.push(SimPod {
                            namespace: ns.into(),
                            name: format!("{ns}-{}-{p}", nodes[node].name),
                            uid: format!(
                                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                                rng.random::<u32>(),
                                rng.random::<u16>(),
                                rng.random_range(0..0xfff_u16),
                                rng.random_range(0..0xfff_u16),
                                rng.random::<u64>() & 0xffff_ffff_ffff
                            ),
                            node,
                            cpu_request: cpu,
                            memory_gib: cpu * rng.random_range(1.0..4.0),
                            peak_usage: rng.random_range(0.5..1.0),
                            phase_h: rng.random_range(-2.0..2.0),
                            containers,
                        });
                        p += 1;
                    }
                }
            }
        }
        Self {
            seed,
            zone: "package".into(),
            node_types,
            clusters,
            nodes,
            pods,
        }
    }

    /// CPU cores pod `pod` uses at `t`.
    pub fn pod_usage(&self, pod: usize, t: DateTime<Utc>) -> f64 {
        let p = &self.pods[pod];
        let c = &self.clusters[self.nodes[p.node].cluster];
        let h = hour_of_day(t) + c.utc_offset_h - p.phase_h;
        p.cpu_request * p.peak_usage * daily_load(h.rem_euclid(24.0))
    }

    /// Per node: total pod CPU usage in cores at `t`.
    fn node_usage_cores(&self, t: DateTime<Utc>) -> Vec<f64> {
        let mut cores = vec![0.0; self.nodes.len()];
        for (i, p) in self.pods.iter().enumerate() {
            cores[p.node] += self.pod_usage(i, t);
        }
        cores
    }

    fn state_from_usage(&self, node: usize, usage_cores: f64, t: DateTime<Utc>) -> NodeState {
        let n = &self.nodes[node];
        let ty = &self.node_types[n.node_type];
        let u = (usage_cores / ty.cores + SYSTEM_USAGE).min(1.0);
        let gpu_watts = ty.gpu_watts.map(|(idle, max)| {
            let c = &self.clusters[n.cluster];
            let h = (hour_of_day(t) + c.utc_offset_h).rem_euclid(24.0);
            idle + (max - idle) * 0.8 * daily_load(h)
        });
        NodeState {
            usage_ratio: u,
            package_watts: ty.curve.watts(u),
            package_idle_watts: ty.curve.idle(),
            gpu_watts,
        }
    }

    /// Every node's state at `t`.
    pub fn node_states(&self, t: DateTime<Utc>) -> Vec<NodeState> {
        self.node_usage_cores(t)
            .iter()
            .enumerate()
            .map(|(i, c)| self.state_from_usage(i, *c, t))
            .collect()
    }

    /// Active package power attributed to each pod at `t` (by its share of CPU usage).
    pub fn pod_active_watts(&self, t: DateTime<Utc>, states: &[NodeState]) -> Vec<f64> {
        let usage: Vec<f64> = (0..self.pods.len()).map(|i| self.pod_usage(i, t)).collect();
        let mut node_usage = vec![0.0; self.nodes.len()];
        for (p, u) in self.pods.iter().zip(&usage) {
            node_usage[p.node] += u;
        }
        self.pods
            .iter()
            .zip(&usage)
            .map(|(p, u)| {
                let s = &states[p.node];
                let share = if node_usage[p.node] > 0.0 {
                    u / node_usage[p.node]
                } else {
                    0.0
                };
                // System usage is not a pod's: only the pods' part of active power is shared.
                let pods_part = (s.usage_ratio - SYSTEM_USAGE).max(0.0) / s.usage_ratio.max(1e-9);
                (s.package_watts - s.package_idle_watts) * pods_part * share
            })
            .collect()
    }

    /// Index of the cluster named `name`.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }

    /// Node indices of one cluster.
    pub fn cluster_nodes(&self, cluster: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.cluster == cluster)
            .map(|(i, _)| i)
    }

    /// Package energy of every node over `[from, to]`, joules (Simpson's rule, ≤ 10 s steps).
    pub fn node_energy_joules(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<f64> {
        integrate(from, to, self.nodes.len(), |t, out| {
            for (o, s) in out.iter_mut().zip(self.node_states(t)) {
                *o = s.package_watts;
            }
        })
    }

    /// Active package energy of every pod over `[from, to]`, joules.
    pub fn pod_energy_joules(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<f64> {
        integrate(from, to, self.pods.len(), |t, out| {
            let states = self.node_states(t);
            out.copy_from_slice(&self.pod_active_watts(t, &states));
        })
    }
}

/// Integrates a vector-valued power function over `[from, to]` with Simpson's rule on
/// steps of at most 10 s; returns joules per component.
pub fn integrate(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: usize,
    mut f: impl FnMut(DateTime<Utc>, &mut [f64]),
) -> Vec<f64> {
    let span = (to - from).as_seconds_f64();
    let mut acc = vec![0.0; n];
    if span <= 0.0 {
        return acc;
    }
    let intervals = ((span / 10.0).ceil() as usize).max(1) * 2;
    let h = span / intervals as f64;
    let mut buf = vec![0.0; n];
    for i in 0..=intervals {
        let w = if i == 0 || i == intervals {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let t = from + chrono::Duration::nanoseconds((i as f64 * h * 1e9) as i64);
        f(t, &mut buf);
        for (a, b) in acc.iter_mut().zip(&buf) {
            *a += w * b;
        }
    }
    acc.iter_mut().for_each(|a| *a *= h / 3.0);
    acc
}

#[async_trait]
impl TelemetrySource for SimulatedFleet {
    async fn snapshot(&self, now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
        let zone = SimZone::parse(&self.zone).ok_or_else(|| TelemetryError::Config {
            field: "zone".into(),
            message: format!("simulated fleet has no zone `{}`", self.zone),
        })?;
        let states = self.node_states(now);
        let pod_watts = self.pod_active_watts(now, &states);
        let fresh = |value| Reading::Fresh(Sample { value, at: now });
        let mut clusters: BTreeMap<String, ClusterPower> = BTreeMap::new();
        for (node, s) in self.nodes.iter().zip(&states) {
            let c = clusters
                .entry(self.clusters[node.cluster].name.clone())
                .or_default();
            c.nodes.insert(
                node.name.clone(),
                NodePower {
                    total_watts: fresh(s.zone_watts(zone)),
                    idle_watts: fresh(s.zone_idle_watts(zone)),
                    active_watts: fresh(s.zone_active_watts(zone)),
                    cpu_usage_ratio: fresh(s.usage_ratio),
                    gpu_watts: s.gpu_watts.map(fresh),
                },
            );
        }
        for (pod, w) in self.pods.iter().zip(pod_watts) {
            let node = &self.nodes[pod.node];
            clusters
                .entry(self.clusters[node.cluster].name.clone())
                .or_default()
                .pods
                .push(PodPower {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    node: node.name.clone(),
                    watts: fresh(w * zone.slope()),
                });
        }
        for c in clusters.values_mut() {
            c.pods
                .sort_unstable_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
        }
        Ok(FleetSnapshot {
            taken_at: now,
            origin: self.describe(),
            schema: None,
            zone: self.zone.clone(),
            stale_after_s: f64::INFINITY,
            clusters,
            quality: DataQuality::default(),
        })
    }

    fn describe(&self) -> String {
        format!("simulated fleet (seed {})", self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn same_seed_same_fleet_and_different_seed_differs() {
        let a = serde_json::to_string(&SimulatedFleet::embedded(7)).unwrap();
        let b = serde_json::to_string(&SimulatedFleet::embedded(7)).unwrap();
        let c = serde_json::to_string(&SimulatedFleet::embedded(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn load_follows_the_day_and_stays_within_capacity() {
        let f = SimulatedFleet::embedded(1);
        let night = f.node_states(Utc.with_ymd_and_hms(2020, 3, 2, 3, 0, 0).unwrap());
        let day = f.node_states(Utc.with_ymd_and_hms(2020, 3, 2, 15, 0, 0).unwrap());
        let sum = |s: &[NodeState]| s.iter().map(|n| n.package_watts).sum::<f64>();
        assert!(sum(&day) > sum(&night) * 1.2);
        assert!(
            day.iter()
                .all(|s| s.usage_ratio <= 1.0 && s.usage_ratio > 0.0)
        );
    }

    #[tokio::test]
    async fn pod_power_never_includes_idle_and_sums_below_active() {
        let f = SimulatedFleet::embedded(3);
        let t = Utc.with_ymd_and_hms(2020, 6, 1, 12, 0, 0).unwrap();
        let snap = f.snapshot(t).await.unwrap();
        for c in snap.clusters.values() {
            let (active, _) = c.active_watts();
            let pods: f64 = c.pods.iter().filter_map(|p| p.watts.fresh()).sum();
            assert!(pods < active && pods > 0.8 * active, "{pods} vs {active}");
        }
        assert_eq!(snap.clusters.len(), 3);
    }

    #[test]
    fn simpson_integrates_exactly_enough() {
        let from = Utc.timestamp_opt(0, 0).unwrap();
        let to = Utc.timestamp_opt(3600, 0).unwrap();
        let j = integrate(from, to, 1, |t, o| {
            o[0] = 100.0 + (t.timestamp() as f64 / 3600.0) * 50.0
        });
        assert!((j[0] - 3600.0 * 125.0).abs() < 1e-6 * j[0]);
    }
}
