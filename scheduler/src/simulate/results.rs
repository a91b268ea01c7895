//! What one simulated policy run measured, and the figures reported for it.

use std::collections::BTreeMap;

use kepler_client::accounting::JOULES_PER_KWH;
use serde::Serialize;

/// Raw counters accumulated step by step during one policy run.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Fleet energy, joules (awake nodes' platform power × step length).
    pub energy_j: f64,
    /// Emissions, gCO2e (each step's energy × its cluster's intensity).
    pub carbon_g: f64,
    /// Energy per cluster, joules.
    pub energy_j_by_cluster: Vec<f64>,
    /// Energy and emissions per hour of the period (joules, gCO2e), for the time/place
    /// attribution.
    pub by_hour: Vec<(f64, f64)>,
    /// Energy attributed to batch jobs, joules: each node's power shared by its pods' CPU
    /// use (an idle node's power is nobody's).
    pub batch_energy_j: f64,
    /// Emissions attributed to batch jobs the same way, gCO2e.
    pub batch_carbon_g: f64,
    /// Node-steps with the node awake.
    pub node_steps_on: u64,
    /// Latency of every running service replica-step, by latency in µs.
    pub latency_us: BTreeMap<i64, u64>,
    /// Service replica-steps wanted by the services' autoscalers.
    pub replica_steps_wanted: u64,
    /// Replica-steps running within the SLO.
    pub replica_steps_ok: u64,
    /// Replica-steps running beyond the SLO.
    pub replica_steps_over_slo: u64,
    /// Replica-steps wanted but not running (no node could take the pod).
    pub replica_steps_pending: u64,
    /// Of those, a new service's replicas waiting within its rollout (the first
    /// `progressDeadlineSeconds` after its creation): not SLO violations.
    pub replica_steps_rollout: u64,
    /// Batch jobs submitted.
    pub batch_jobs: u64,
    /// Batch jobs finished by their deadline.
    pub batch_on_time: u64,
    /// Batch jobs finished after their deadline, or unfinished with the deadline passed.
    pub batch_late: u64,
    /// Batch jobs unfinished at the end with their deadline still ahead.
    pub batch_open: u64,
    /// Batch jobs held for a cleaner window (shifting policies).
    pub batch_held: u64,
    /// Total time batch jobs were held, seconds.
    pub batch_held_s: f64,
    /// Forecast carbon the holds were expected to save, gCO2e (what the decisions saw).
    pub batch_shift_forecast_saved_g: f64,
    /// Pods moved (rebalancing, autoscaler drains).
    pub migrations: u64,
    /// Energy of the moves, joules (included in `energy_j`).
    pub migration_j: f64,
    /// Emissions of the moves, gCO2e (included in `carbon_g`).
    pub migration_carbon_g: f64,
    /// Replica-steps a moved replica was restarting while another replica of its service
    /// served (not a violation).
    pub replica_steps_restarting_covered: u64,
    /// Replica-steps a moved replica was restarting while its service had no replica
    /// serving (included in `replica_steps_pending`).
    pub replica_steps_restarting: u64,
    /// Replica-steps waiting for a woken node to boot (included in
    /// `replica_steps_pending`).
    pub replica_steps_booting: u64,
    /// Sleeping nodes woken to take a pod.
    pub wakes: u64,
    /// Nodes powered down (empty, or drained by the autoscaler).
    pub power_downs: u64,
    /// Nodes with pods the autoscaler drained.
    pub autoscaler_drains: u64,
    /// Nodes woken ahead of need to keep ecoplace's headroom (in `wakes`).
    pub headroom_wakes: u64,
    /// Pods started (arrivals, scale-ups, migrations).
    pub pods_started: u64,
    /// MILP solves (batch rounds and rebalancing).
    pub milp_solves: u64,
    /// MILP solves that returned no plan (the per-pod path placed the pods instead).
    pub milp_failures: u64,
    /// Highest requested/allocatable ratio of any node at any step (CPU or memory).
    pub max_request_ratio: f64,
}

/// The reported figures of one policy (stable JSON keys: other tools read them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// Fleet energy over the period, kWh (IT power, PUE 1).
    pub energy_kwh: f64,
    /// Emissions over the period, kgCO2e.
    pub carbon_kg: f64,
    /// Service replica-steps beyond the SLO or not running (but for a new service's rollout,
    /// `replica_steps_rollout`), plus batch deadline misses.
    pub slo_violations: u64,
    /// Median user latency over running service replica-steps, ms.
    pub p50_latency_ms: f64,
    /// 95th percentile of the same, ms.
    pub p95_latency_ms: f64,
    /// Pods moved to another node by rebalancing.
    pub migrations: u64,
    /// Hours of awake nodes, summed over nodes.
    pub active_node_hours: f64,
    /// Energy change against `default`, percent; negative = less (absent when `default`
    /// did not run).
    pub energy_change_pct: Option<f64>,
    /// Carbon change against `default`, percent; negative = less.
    pub carbon_change_pct: Option<f64>,
    /// Energy change against `autoscaler`, percent; negative = less (absent when
    /// `autoscaler` did not run).
    pub energy_vs_autoscaler_pct: Option<f64>,
    /// Carbon change against `autoscaler`, percent; negative = less.
    pub carbon_vs_autoscaler_pct: Option<f64>,
    /// Energy of the moves (restarts), kWh (included in `energy_kwh`).
    pub migration_kwh: f64,
    /// Nodes with pods drained by the autoscaler.
    pub autoscaler_drains: u64,
    /// Nodes woken ahead of need to keep ecoplace's headroom (in `node_wakes`).
    pub headroom_wakes: u64,
    /// Service replica-steps waiting for a woken node's boot (in `replica_steps_pending`).
    pub replica_steps_booting: u64,
    /// Replica-steps a moved replica restarted while its service had none serving (in
    /// `replica_steps_pending`).
    pub replica_steps_restarting: u64,
    /// Emissions per kWh used, gCO2e/kWh.
    pub mean_intensity_g_per_kwh: f64,
    /// Energy per cluster, kWh.
    pub energy_kwh_by_cluster: BTreeMap<String, f64>,
    /// Energy attributed to batch jobs (each node's power shared by its pods' CPU use), kWh.
    pub batch_energy_kwh: f64,
    /// Emissions attributed to batch jobs the same way, kgCO2e.
    pub batch_carbon_kg: f64,
    /// Energy (kWh) and emissions (kgCO2e) per hour of the period (not in the JSON).
    #[serde(skip)]
    pub by_hour: Vec<(f64, f64)>,
    /// Service replica-steps beyond the SLO.
    pub replica_steps_over_slo: u64,
    /// Service replica-steps wanted but not running.
    pub replica_steps_pending: u64,
    /// Of those, a new service's replicas waiting within its rollout (the first
    /// `progressDeadlineSeconds`, 600 s, after its creation): not SLO violations.
    pub replica_steps_rollout: u64,
    /// Service replica-steps wanted.
    pub replica_steps_wanted: u64,
    /// Batch jobs that missed their deadline.
    pub batch_deadline_misses: u64,
    /// Batch jobs submitted.
    pub batch_jobs: u64,
    /// Batch jobs held for a cleaner window (shifting policies).
    pub batch_held: u64,
    /// Mean hold of the held jobs, hours.
    pub batch_mean_hold_h: f64,
    /// Carbon the holds were forecast to save, kgCO2e (the decision's estimate).
    pub batch_shift_forecast_saved_kg: f64,
    /// Nodes woken to take pods.
    pub node_wakes: u64,
    /// Nodes powered down (empty, or drained by the autoscaler).
    pub node_power_downs: u64,
    /// Pods started.
    pub pods_started: u64,
    /// MILP solves.
    pub milp_solves: u64,
    /// MILP solves without a plan (per-pod path used).
    pub milp_failures: u64,
    /// Highest requested/allocatable ratio seen on any node (≤ 1: never over capacity).
    pub max_request_ratio: f64,
}

impl PolicyResult {
    /// Turns counters into reported figures; `cluster_names` label the per-cluster energy.
    pub fn from_counters(c: &Counters, cluster_names: &[String], step_hours: f64) -> Self {
        let energy_kwh = c.energy_j / JOULES_PER_KWH;
        Self {
            energy_kwh: round(energy_kwh, 3),
            carbon_kg: round(c.carbon_g / 1000.0, 3),
            slo_violations: c.replica_steps_over_slo
                + c.replica_steps_pending
                    .saturating_sub(c.replica_steps_rollout)
                + c.batch_late,
            p50_latency_ms: percentile_ms(&c.latency_us, 0.50),
            p95_latency_ms: percentile_ms(&c.latency_us, 0.95),
            migrations: c.migrations,
            active_node_hours: round(c.node_steps_on as f64 * step_hours, 3),
            energy_change_pct: None,
            carbon_change_pct: None,
            energy_vs_autoscaler_pct: None,
            carbon_vs_autoscaler_pct: None,
            migration_kwh: round(c.migration_j / JOULES_PER_KWH, 4),
            autoscaler_drains: c.autoscaler_drains,
            headroom_wakes: c.headroom_wakes,
            replica_steps_booting: c.replica_steps_booting,
            replica_steps_restarting: c.replica_steps_restarting,
            mean_intensity_g_per_kwh: if energy_kwh > 0.0 {
                round(c.carbon_g / energy_kwh, 1)
            } else {
                0.0
            },
            energy_kwh_by_cluster: cluster_names
                .iter()
                .zip(&c.energy_j_by_cluster)
                .map(|(n, j)| (n.clone(), round(j / JOULES_PER_KWH, 3)))
                .collect(),
            batch_energy_kwh: round(c.batch_energy_j / JOULES_PER_KWH, 3),
            batch_carbon_kg: round(c.batch_carbon_g / 1000.0, 3),
            by_hour: c
                .by_hour
                .iter()
                .map(|(j, g)| (j / JOULES_PER_KWH, g / 1000.0))
                .collect(),
            replica_steps_over_slo: c.replica_steps_over_slo,
            replica_steps_pending: c.replica_steps_pending,
            replica_steps_rollout: c.replica_steps_rollout,
            replica_steps_wanted: c.replica_steps_wanted,
            batch_deadline_misses: c.batch_late,
            batch_jobs: c.batch_jobs,
            batch_held: c.batch_held,
            batch_mean_hold_h: if c.batch_held > 0 {
                round(c.batch_held_s / 3600.0 / c.batch_held as f64, 2)
            } else {
                0.0
            },
            batch_shift_forecast_saved_kg: round(c.batch_shift_forecast_saved_g / 1000.0, 3),
            node_wakes: c.wakes,
            node_power_downs: c.power_downs,
            pods_started: c.pods_started,
            milp_solves: c.milp_solves,
            milp_failures: c.milp_failures,
            max_request_ratio: round(c.max_request_ratio, 4),
        }
    }

    /// Fills the changes against the `default` policy's figures (negative = less).
    pub fn set_changes(&mut self, default: &PolicyResult) {
        self.energy_change_pct = change_pct(default.energy_kwh, self.energy_kwh);
        self.carbon_change_pct = change_pct(default.carbon_kg, self.carbon_kg);
    }

    /// Fills the changes against the `autoscaler` policy's figures (negative = less).
    pub fn set_autoscaler_changes(&mut self, autoscaler: &PolicyResult) {
        self.energy_vs_autoscaler_pct = change_pct(autoscaler.energy_kwh, self.energy_kwh);
        self.carbon_vs_autoscaler_pct = change_pct(autoscaler.carbon_kg, self.carbon_kg);
    }
}

/// `100 · (v − base) / base`, rounded to 0.01 (`None` without a base).
pub fn change_pct(base: f64, v: f64) -> Option<f64> {
    (base > 0.0).then(|| round(100.0 * (v - base) / base, 2))
}

/// Nearest-rank percentile of a latency histogram, ms (0 when empty).
pub fn percentile_ms(hist: &BTreeMap<i64, u64>, q: f64) -> f64 {
    let n: u64 = hist.values().sum();
    if n == 0 {
        return 0.0;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (&us, &count) in hist {
        seen += count;
        if seen >= rank {
            return us as f64 / 1000.0;
        }
    }
    0.0
}

/// Rounds to `digits` decimals (keeps JSON stable and readable).
pub fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (v * k).round() / k
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let h = BTreeMap::from([(5_000, 90), (13_000, 9), (22_000, 1)]);
        assert_eq!(percentile_ms(&h, 0.5), 5.0);
        assert_eq!(percentile_ms(&h, 0.95), 13.0);
        assert_eq!(percentile_ms(&h, 1.0), 22.0);
        assert_eq!(percentile_ms(&BTreeMap::new(), 0.5), 0.0);
    }
}
