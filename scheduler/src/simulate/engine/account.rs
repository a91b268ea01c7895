//! Power management and accounting of a simulation step: empty nodes power down (the
//! `EmptyNodes` lifecycle); energy, carbon, latency and SLOs are counted.

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use super::{GIB, Sim, StepRecord};

/// Kubernetes' default `progressDeadlineSeconds` of a Deployment: how long its rollout may
/// take before it counts as failed.
pub const ROLLOUT_DEADLINE_S: i64 = 600;

impl Sim<'_> {
    pub(super) fn power_down(&mut self) {
        let mut awake = vec![0usize; self.fleet.clusters.len()];
        for (n, rt) in self.nodes.iter().enumerate() {
            if rt.on {
                awake[self.fleet.nodes[n].cluster] += 1;
            }
        }
        let k = self.k;
        for (n, rt) in self.nodes.iter_mut().enumerate() {
            if rt.pods > 0 || !rt.ready(k) {
                rt.empty_steps = 0;
                continue;
            }
            rt.empty_steps += 1;
            let c = self.fleet.nodes[n].cluster;
            if rt.on
                && rt.empty_steps >= self.settings.power_down_after_steps
                && awake[c] > self.settings.min_awake_per_cluster
            {
                rt.on = false;
                awake[c] -= 1;
                self.counters.power_downs += 1;
            }
        }
    }

    /// Counts `joules` drawn in cluster `c` at `g_per_kwh` in the step starting `t`, the
    /// share `batch_share` of it by batch jobs: totals, per cluster, per hour, batch.
    pub(super) fn book(
        &mut self,
        t: DateTime<Utc>,
        c: usize,
        joules: f64,
        g_per_kwh: f64,
        batch_share: f64,
    ) {
        let grams = joules / kepler_client::accounting::JOULES_PER_KWH * g_per_kwh;
        let counters = &mut self.counters;
        counters.energy_j += joules;
        counters.energy_j_by_cluster[c] += joules;
        counters.carbon_g += grams;
        counters.batch_energy_j += joules * batch_share;
        counters.batch_carbon_g += grams * batch_share;
        let hour = usize::try_from((t - self.settings.start).num_hours()).unwrap_or(0);
        if counters.by_hour.len() <= hour {
            counters.by_hour.resize(hour + 1, (0.0, 0.0));
        }
        counters.by_hour[hour].0 += joules;
        counters.by_hour[hour].1 += grams;
    }

    /// Power, energy and carbon over `[t, t + step)` (usage at mid-step), latency and
    /// SLOs of every wanted service replica.
    pub(super) fn account(&mut self, t: DateTime<Utc>) -> Result<()> {
        let dt = self.settings.step_s as f64;
        let mid = t + Duration::seconds(self.settings.step_s / 2);
        let used = self.used_cores(mid);
        let batch = self.batch_cores(mid);
        let mut intensity = Vec::with_capacity(self.fleet.clusters.len());
        for c in &self.fleet.clusters {
            intensity.push(self.fleet.carbon.intensity_at(&c.carbon_zone, mid)?);
        }
        let mut watts = vec![0.0; self.nodes.len()];
        let mut drawn = Vec::with_capacity(self.nodes.len());
        for (n, rt) in self.nodes.iter().enumerate() {
            let ty = self.fleet.node_type(n);
            let ratio =
                (rt.requested.cpu / ty.cores).max(rt.requested.memory / (ty.memory_gib * GIB));
            self.counters.max_request_ratio = self.counters.max_request_ratio.max(ratio);
            if !rt.on {
                continue;
            }
            let w = ty.watts(used[n]);
            watts[n] = w;
            let c = self.fleet.nodes[n].cluster;
            let batch_share = if used[n] > 0.0 {
                (batch[n] / used[n]).clamp(0.0, 1.0)
            } else {
                0.0
            };
            drawn.push((c, w * dt, batch_share));
        }
        for (c, joules, batch_share) in drawn {
            self.book(t, c, joules, intensity[c], batch_share);
            self.counters.node_steps_on += 1;
        }
        let k = self.k;
        for (i, s) in self.services.iter().enumerate() {
            if !s.active || s.done {
                continue;
            }
            let w = &self.trace[i];
            self.counters.replica_steps_wanted += s.running.len() as u64 + u64::from(s.pending);
            self.counters.replica_steps_pending += u64::from(s.pending);
            // Bound but not serving yet: a scale-up waiting for its node's boot is a wanted
            // replica not running; a moved replica restarting counts only while no replica
            // of its service serves.
            let (mut serving, mut booting, mut restarting) = (0u64, 0u64, 0u64);
            for p in s.running.iter().filter_map(|id| self.pods.get(id)) {
                match (p.ready_step <= k, p.moved) {
                    (true, _) => serving += 1,
                    (false, false) => booting += 1,
                    (false, true) => restarting += 1,
                }
            }
            let (restarting, covered) = if serving == 0 {
                (restarting, 0)
            } else {
                (0, restarting)
            };
            self.counters.replica_steps_restarting_covered += covered;
            self.counters.replica_steps_booting += booting;
            self.counters.replica_steps_restarting += restarting;
            self.counters.replica_steps_pending += booting + restarting;
            // A new Deployment's first replicas waiting for capacity within
            // `progressDeadlineSeconds` of its creation (services there at the start: of the
            // period's start) are its rollout, not a breach of a live service's SLO; counted
            // apart (still in `replica_steps_pending`).
            let created = w.arrive.max(self.settings.start);
            if t < created + Duration::seconds(ROLLOUT_DEADLINE_S) {
                self.counters.replica_steps_rollout += u64::from(s.pending) + booting;
            }
            let region = w.region.as_deref().unwrap_or_default();
            for id in &s.running {
                let Some(p) = self.pods.get(id) else { continue };
                if p.ready_step > k {
                    continue;
                }
                let ms = self.fleet.latency_ms(region, p.node).unwrap_or(0.0);
                *self
                    .counters
                    .latency_us
                    .entry((ms * 1000.0).round() as i64)
                    .or_default() += 1;
                if w.slo_ms.is_some_and(|slo| ms > slo) {
                    self.counters.replica_steps_over_slo += 1;
                } else {
                    self.counters.replica_steps_ok += 1;
                }
            }
        }
        if self.settings.record_steps {
            self.steps.push(StepRecord {
                at: t,
                node_watts: watts,
                node_cpu_requested: self.nodes.iter().map(|r| r.requested.cpu).collect(),
                node_memory_requested_gib: self
                    .nodes
                    .iter()
                    .map(|r| r.requested.memory / GIB)
                    .collect(),
                cluster_intensity: intensity,
            });
        }
        Ok(())
    }

    /// At the end: unfinished jobs whose deadline passed are late, the others open.
    pub(super) fn settle_open_jobs(&mut self) {
        let end = self.settings.end();
        for (i, job) in self.jobs.iter_mut().enumerate() {
            if !job.arrived || job.settled {
                continue;
            }
            job.settled = true;
            if self.trace[i].deadline.is_some_and(|d| d <= end) {
                self.counters.batch_late += 1;
            } else {
                self.counters.batch_open += 1;
            }
        }
    }
}
