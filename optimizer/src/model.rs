//! The inputs of every decision: targets (nodes or clusters) and workloads.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// An amount of each schedulable resource: CPU cores, memory bytes, GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// CPU in cores (1.0 = one core, Kubernetes `1000m`).
    pub cpu: f64,
    /// Memory in bytes.
    pub memory: f64,
    /// GPUs (whole devices).
    pub gpu: f64,
}

/// One resource dimension, to name it in explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// CPU cores.
    Cpu,
    /// Memory bytes.
    Memory,
    /// GPU devices.
    Gpu,
}

impl Resource {
    /// All dimensions, in a fixed order.
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Gpu];
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Gpu => "gpu",
        })
    }
}

impl Resources {
    /// Builds an amount from cores, bytes and GPUs.
    pub const fn new(cpu: f64, memory: f64, gpu: f64) -> Self {
        Self { cpu, memory, gpu }
    }

    /// The amount of one dimension.
    pub fn get(&self, r: Resource) -> f64 {
        match r {
            Resource::Cpu => self.cpu,
            Resource::Memory => self.memory,
            Resource::Gpu => self.gpu,
        }
    }

    /// Component-wise difference, floored at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu: (self.cpu - other.cpu).max(0.0),
            memory: (self.memory - other.memory).max(0.0),
            gpu: (self.gpu - other.gpu).max(0.0),
        }
    }

    /// How many copies of `request` fit in `self` (u32::MAX when the request is empty).
    pub fn fits(&self, request: &Resources) -> u32 {
        let mut n = f64::INFINITY;
        for r in Resource::ALL {
            let need = request.get(r);
            if need > 0.0 {
                n = n.min((self.get(r) / need + 1e-9).floor());
            }
        }
        if n.is_infinite() {
            u32::MAX
        } else {
            n.clamp(0.0, u32::MAX as f64) as u32
        }
    }
}

/// Whether a target is a Kubernetes node (extender) or a managed cluster (OCM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A node of one cluster.
    #[default]
    Node,
    /// A whole managed cluster.
    Cluster,
}

/// Grid carbon intensity seen by a target: now, and a forecast as a step curve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarbonOutlook {
    /// Intensity now, gCO2e/kWh.
    pub now_g_per_kwh: f64,
    /// Forecast points (start time, gCO2e/kWh), each holding until the next; sorted by time.
    pub forecast: Vec<(DateTime<Utc>, f64)>,
}

impl CarbonOutlook {
    /// A flat outlook: the same intensity at every time.
    pub fn flat(g_per_kwh: f64) -> Self {
        Self {
            now_g_per_kwh: g_per_kwh,
            forecast: Vec::new(),
        }
    }

    /// Time-weighted mean intensity over `[at, at + duration)`; `now` where the forecast
    /// does not reach (before its first point), the last point beyond its end.
    pub fn mean_over(&self, at: DateTime<Utc>, duration: Duration) -> f64 {
        let span = duration.num_milliseconds() as f64;
        if self.forecast.is_empty() || span <= 0.0 {
            return self.intensity_at(at);
        }
        let end = at + duration;
        // The forecast is sorted: find the step holding at `at` by bisection.
        let next = self.first_after(at);
        let mut value = self.step_before(next);
        let mut total = 0.0;
        let mut t = at;
        for &(start, v) in &self.forecast[next..] {
            if start >= end {
                break;
            }
            total += value * (start - t).num_milliseconds() as f64;
            t = start;
            value = v;
        }
        total += value * (end - t).num_milliseconds() as f64;
        total / span
    }

    /// Intensity at `t`: the forecast step holding at `t`, else `now`.
    pub fn intensity_at(&self, t: DateTime<Utc>) -> f64 {
        self.step_before(self.first_after(t))
    }

    /// Index of the first forecast point after `t` (points are sorted by time).
    fn first_after(&self, t: DateTime<Utc>) -> usize {
        self.forecast.partition_point(|(start, _)| *start <= t)
    }

    /// The value of the step before forecast point `next`, `now` before the first.
    fn step_before(&self, next: usize) -> f64 {
        next.checked_sub(1)
            .and_then(|i| self.forecast.get(i))
            .map_or(self.now_g_per_kwh, |&(_, v)| v)
    }
}

/// Where work can go: a node or a cluster, with its capacity and energy profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Target {
    /// Unique name (node name or managed-cluster name).
    pub name: String,
    /// Node or cluster.
    pub kind: TargetKind,
    /// Allocatable resources.
    pub capacity: Resources,
    /// Resources already requested by work running there (not counted in any workload's
    /// `current` placement).
    pub allocated: Resources,
    /// Power drawn when on and idle, watts (for a cluster: the sum over its nodes).
    pub idle_watts: f64,
    /// Power drawn at full CPU load, watts.
    pub max_watts: f64,
    /// CPU utilisation now, 0..=1.
    pub utilisation: f64,
    /// Whether it already draws idle power (awake and serving work); when false, using it
    /// costs its idle power over the planning horizon.
    pub powered_on: bool,
    /// Hardware type, the key of its power curve (e.g. `std-x86`).
    pub node_type: String,
    /// Grid carbon intensity where it runs.
    pub carbon: CarbonOutlook,
    /// Labels (node or cluster labels).
    pub labels: BTreeMap<String, String>,
    /// Maximum total power, watts, if capped.
    pub power_cap_watts: Option<f64>,
    /// Network latency from each user region to this target, milliseconds.
    pub latency_ms: BTreeMap<String, f64>,
}

impl Target {
    /// Resources still free.
    pub fn free(&self) -> Resources {
        self.capacity.saturating_sub(&self.allocated)
    }

    /// Power drawn now, watts: idle plus the load-proportional part (linear estimate used
    /// for power caps).
    pub fn current_watts(&self) -> f64 {
        if !self.powered_on {
            return 0.0;
        }
        self.idle_watts
            + (self.max_watts - self.idle_watts).max(0.0) * self.utilisation.clamp(0.0, 1.0)
    }
}

/// The latency SLO of a user region without a limit: its latency counts in the latency
/// term, and no target is too far (finite, so that it serialises).
pub const NO_SLO_MS: f64 = f64::MAX;

/// Something to place: `replicas` identical copies with the same requests and constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Name used in plans and explanations.
    pub name: String,
    /// Requests of one replica.
    pub requests: Resources,
    /// CPU cores one replica is expected to use (e.g. its past mean, or its autoscaling
    /// target × request); power is priced on it. `None`: its CPU request.
    pub expected_cpu_cores: Option<f64>,
    /// How many replicas to place.
    pub replicas: u32,
    /// How long it is expected to run, seconds (energy and carbon are counted over it).
    pub expected_duration_s: f64,
    /// Maximum latency per user region, milliseconds; the regions are its users
    /// ([`NO_SLO_MS`]: the region's latency counts, without a limit).
    pub latency_slo_ms: BTreeMap<String, f64>,
    /// If non-empty, only these targets may be used.
    pub allowed_targets: Vec<String>,
    /// Targets that must not be used.
    pub denied_targets: Vec<String>,
    /// Workloads sharing this group must all run on one target.
    pub affinity_group: Option<String>,
    /// Replicas of workloads sharing this group never share a target.
    pub anti_affinity_group: Option<String>,
    /// At most this many replicas on one target (spread).
    pub max_per_target: Option<u32>,
    /// Exactly this many distinct targets (OCM `numberOfClusters`).
    pub number_of_targets: Option<u32>,
    /// Replicas running now, per target name (moving them away costs migration).
    pub current: BTreeMap<String, u32>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            name: String::new(),
            requests: Resources::default(),
            expected_cpu_cores: None,
            replicas: 1,
            expected_duration_s: 3600.0,
            latency_slo_ms: BTreeMap::new(),
            allowed_targets: Vec::new(),
            denied_targets: Vec::new(),
            affinity_group: None,
            anti_affinity_group: None,
            max_per_target: None,
            number_of_targets: None,
            current: BTreeMap::new(),
        }
    }
}

impl Workload {
    /// Expected duration as a `chrono::Duration` (at least one second).
    pub fn duration(&self) -> Duration {
        Duration::milliseconds((self.expected_duration_s.max(1.0) * 1000.0) as i64)
    }

    /// CPU cores one replica is expected to use: [`Self::expected_cpu_cores`], else its
    /// CPU request.
    pub fn cpu_use(&self) -> f64 {
        self.expected_cpu_cores.unwrap_or(self.requests.cpu)
    }

    /// Whether the policy lets this workload use `target` (allowed/denied lists only).
    pub fn permits(&self, target: &str) -> bool {
        (self.allowed_targets.is_empty() || self.allowed_targets.iter().any(|t| t == target))
            && !self.denied_targets.iter().any(|t| t == target)
    }

    /// Everything but the name, replicas and current placement: workloads with equal
    /// shapes are interchangeable and are merged into one class.
    pub fn same_shape(&self, other: &Workload) -> bool {
        self.requests == other.requests
            && self.expected_cpu_cores == other.expected_cpu_cores
            && self.expected_duration_s == other.expected_duration_s
            && self.latency_slo_ms == other.latency_slo_ms
            && self.allowed_targets == other.allowed_targets
            && self.denied_targets == other.denied_targets
            && self.affinity_group == other.affinity_group
            && self.anti_affinity_group == other.anti_affinity_group
            && self.max_per_target == other.max_per_target
            && self.number_of_targets == other.number_of_targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fits_counts_whole_copies_on_the_tightest_resource() {
        let free = Resources::new(4.0, 8.0, 0.0);
        assert_eq!(free.fits(&Resources::new(1.0, 3.0, 0.0)), 2);
        assert_eq!(free.fits(&Resources::new(0.5, 0.0, 0.0)), 8);
        assert_eq!(free.fits(&Resources::new(0.0, 0.0, 1.0)), 0);
        assert_eq!(free.fits(&Resources::default()), u32::MAX);
    }

    #[test]
    fn carbon_mean_is_time_weighted_over_the_forecast_steps() {
        let t0 = Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0).unwrap();
        let outlook = CarbonOutlook {
            now_g_per_kwh: 300.0,
            forecast: vec![(t0, 300.0), (t0 + Duration::hours(1), 100.0)],
        };
        // 1 h at 300 then 1 h at 100.
        let m = outlook.mean_over(t0, Duration::hours(2));
        assert!((m - 200.0).abs() < 1e-9, "{m}");
        // Starting 30 min in: 30 min at 300, 90 min at 100.
        let m = outlook.mean_over(t0 + Duration::minutes(30), Duration::hours(2));
        assert!((m - 150.0).abs() < 1e-9, "{m}");
        assert_eq!(
            CarbonOutlook::flat(42.0).mean_over(t0, Duration::hours(5)),
            42.0
        );
    }
}
