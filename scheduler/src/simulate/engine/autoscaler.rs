//! cluster-autoscaler's scale-down, as its FAQ describes it: a ready node whose requested
//! CPU and memory are both under `--scale-down-utilization-threshold` for
//! `--scale-down-unneeded-time` is removed if every pod on it can move elsewhere; empty
//! nodes go in bulk, a node with pods is drained one at a time (`--max-drain-parallelism`
//! 1); nothing is removed within `--scale-down-delay-after-add` of a scale-up; each
//! cluster keeps its node group minimum. Pods that block a drain: batch pods (jobs are
//! commonly marked `safe-to-evict: "false"`, a restart would lose their work) and service
//! replicas whose PodDisruptionBudget (`maxUnavailable: 1`) forbids the eviction. The
//! drained pods are placed again through the policy (kube-scheduler, with the extender
//! when the policy is ecoplace's) and restart.

use anyhow::Result;
use chrono::{DateTime, Utc};
use optimizer::Target;

use optimizer::headroom::{Growth, Reserve, reserve};

use super::{GIB, Sim};
use crate::simulate::trace::{Kind, service_replicas};

impl Sim<'_> {
    /// One scale-down pass of the autoscaler at the end of step `self.k`.
    pub(super) fn autoscale_down(&mut self, t: DateTime<Utc>) -> Result<()> {
        let k = self.k;
        let cfg = self.settings.autoscaler.clone();
        let unneeded_steps = self.settings.steps_of(cfg.unneeded_s).max(1) as u32;
        let threshold = cfg.utilization_threshold;
        for n in 0..self.nodes.len() {
            let ty = self.fleet.node_type(n);
            let rt = &mut self.nodes[n];
            if !rt.ready(k) {
                rt.unneeded_steps = 0;
                continue;
            }
            let cpu = rt.requested.cpu / ty.cores;
            let mem = rt.requested.memory / (ty.memory_gib * GIB);
            if rt.pods == 0 || cpu.max(mem) < threshold {
                rt.unneeded_steps += 1;
            } else {
                rt.unneeded_steps = 0;
            }
        }
        self.wake_for_headroom(t);
        let delay = self.settings.steps_of(cfg.delay_after_add_s);
        if self.last_wake.is_some_and(|w| k < w + delay) {
            return Ok(());
        }
        let mut awake = vec![0usize; self.fleet.clusters.len()];
        for (n, rt) in self.nodes.iter().enumerate() {
            if rt.on {
                awake[self.fleet.nodes[n].cluster] += 1;
            }
        }
        let min = self.settings.min_awake_per_cluster;
        // ecoplace's headroom: per cluster, the ready CPU its services are forecast to need
        // soon; a node whose removal would leave less is kept (its placeholder pods would not
        // fit elsewhere), and a node is woken ahead when the cluster has less.
        let reserve = self.reserves(t);
        let mut usable = self.usable_free(&reserve);
        // Empty nodes first, in bulk.
        for n in 0..self.nodes.len() {
            let c = self.fleet.nodes[n].cluster;
            let held = reserve[c].usable_on(self.node_free(n));
            let rt = &mut self.nodes[n];
            if rt.ready(k)
                && rt.pods == 0
                && rt.unneeded_steps >= unneeded_steps
                && awake[c] > min
                && reserve[c].kept_by(usable[c] - held)
            {
                rt.on = false;
                rt.unneeded_steps = 0;
                awake[c] -= 1;
                usable[c] -= held;
                self.counters.power_downs += 1;
            }
        }
        // Then at most one drain: the least requested unneeded node whose pods can go.
        let mut candidates: Vec<(f64, usize)> = (0..self.nodes.len())
            .filter(|&n| {
                let rt = &self.nodes[n];
                let c = self.fleet.nodes[n].cluster;
                rt.ready(k)
                    && rt.pods > 0
                    && rt.unneeded_steps >= unneeded_steps
                    && awake[c] > min
                    && reserve[c].kept_by(usable[c] - reserve[c].usable_on(self.node_free(n)))
            })
            .map(|n| {
                (
                    self.nodes[n].requested.cpu / self.fleet.node_type(n).cores,
                    n,
                )
            })
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if candidates.is_empty() {
            return Ok(());
        }
        // Only ready nodes may take evicted pods: a drain never wakes one.
        let mut targets = self.targets(t);
        for (i, target) in targets.iter_mut().enumerate() {
            if !self.nodes[i].ready(k) {
                target.capacity = optimizer::Resources::default();
            }
        }
        for (_, n) in candidates {
            if self.try_drain(n, &mut targets, t)? {
                self.counters.autoscaler_drains += 1;
                break;
            }
        }
        Ok(())
    }

    /// Per cluster, the CPU ecoplace keeps ready (0 for policies without headroom):
    /// `optimizer::headroom::reserve` of the services running there, their replicas
    /// forecast day-ahead (the replica count of the same time the day before, over the
    /// horizon; a service that arrived during the period and is younger than a day is
    /// expected to stay as it is), and at least the largest service scale-up one step
    /// brought to the cluster over the last day (new deployments no forecast saw).
    pub(super) fn reserves(&self, t: DateTime<Utc>) -> Vec<Reserve> {
        let mut out = vec![Reserve::default(); self.fleet.clusters.len()];
        let Some(h) = self
            .settings
            .headroom
            .as_ref()
            .filter(|_| self.policy.keeps_headroom())
        else {
            return out;
        };
        let day = chrono::Duration::days(1);
        let horizon = self.settings.steps_of(h.horizon_s).max(1);
        let mut growth: Vec<Vec<Growth>> = vec![Vec::new(); out.len()];
        for (i, s) in self.services.iter().enumerate() {
            if !s.active || s.done || s.running.is_empty() {
                continue;
            }
            let w = &self.trace[i];
            let mut per_cluster = vec![0u32; out.len()];
            for p in s.running.iter().filter_map(|id| self.pods.get(id)) {
                per_cluster[self.fleet.nodes[p.node].cluster] += 1;
            }
            let now = s.running.len() as u32 + s.pending;
            // Services there at the start ran before the period: their history is known.
            let known = w.arrive <= t - day || w.arrive <= self.settings.start;
            let expected = if known {
                (0..=horizon)
                    .map(|j| {
                        let at =
                            t - day + chrono::Duration::seconds(self.settings.step_s * j as i64);
                        service_replicas(w, at)
                    })
                    .max()
                    .unwrap_or(now)
            } else {
                now
            };
            for (c, &here) in per_cluster.iter().enumerate() {
                if here == 0 {
                    continue;
                }
                // The growth lands where the service runs, in proportion.
                let share = f64::from(here) / f64::from(now.max(1));
                growth[c].push(Growth {
                    cpu_per_replica: w.cpu,
                    replicas_now: here,
                    replicas_expected: (f64::from(expected) * share).ceil() as u32,
                });
            }
        }
        for (c, g) in growth.into_iter().enumerate() {
            let burst = self.bursts.iter().map(|b| b[c]).fold(0.0, f64::max);
            out[c] = reserve(g, h.floor).with_burst(burst);
        }
        out
    }

    /// Unrequested CPU of node `n`, cores.
    fn node_free(&self, n: usize) -> f64 {
        (self.fleet.node_type(n).cores - self.nodes[n].requested.cpu).max(0.0)
    }

    /// Per cluster, the unrequested CPU on its awake (ready or booting) nodes that counts
    /// towards its reserve (whole blocks of the reserve's largest replica).
    fn usable_free(&self, reserve: &[Reserve]) -> Vec<f64> {
        let mut usable = vec![0.0; self.fleet.clusters.len()];
        for (n, rt) in self.nodes.iter().enumerate() {
            if rt.on {
                let c = self.fleet.nodes[n].cluster;
                usable[c] += reserve[c].usable_on(self.node_free(n));
            }
        }
        usable
    }

    /// Wakes, in each cluster short of its reserve, the sleeping node with the least idle
    /// power per core (one per cluster and step).
    fn wake_for_headroom(&mut self, t: DateTime<Utc>) {
        let reserve = self.reserves(t);
        let usable = self.usable_free(&reserve);
        for c in 0..self.fleet.clusters.len() {
            if reserve[c].kept_by(usable[c]) {
                continue;
            }
            let best = (0..self.nodes.len())
                .filter(|&n| self.fleet.nodes[n].cluster == c && !self.nodes[n].on)
                .min_by(|&a, &b| {
                    let per_core = |n: usize| {
                        let ty = self.fleet.node_type(n);
                        ty.idle_watts() / ty.cores
                    };
                    per_core(a).total_cmp(&per_core(b)).then(a.cmp(&b))
                });
            if let Some(n) = best {
                let boot = self.settings.steps_of(self.settings.boot_s);
                let rt = &mut self.nodes[n];
                rt.on = true;
                rt.ready_step = self.k + boot;
                rt.unneeded_steps = 0;
                self.counters.wakes += 1;
                self.counters.headroom_wakes += 1;
                self.last_wake = Some(self.k);
            }
        }
    }

    /// Drains node `n` and powers it off if every pod on it may be evicted and lands on
    /// another ready node (placed through the policy); else leaves it untouched.
    fn try_drain(&mut self, n: usize, targets: &mut [Target], t: DateTime<Utc>) -> Result<bool> {
        let k = self.k;
        let mut on_node: Vec<(u64, usize)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.node == n)
            .map(|(&id, p)| (id, p.workload))
            .collect();
        on_node.sort_unstable();
        // Evictable: service replicas only, one per service, and another replica of the
        // service serving elsewhere (the budget of `maxUnavailable: 1`).
        let mut seen = std::collections::BTreeSet::new();
        for &(_, w) in &on_node {
            if self.trace[w].kind == Kind::Batch || !seen.insert(w) {
                return Ok(false);
            }
            let serving_elsewhere = self.services[w].running.iter().any(|id| {
                self.pods
                    .get(id)
                    .is_some_and(|p| p.node != n && p.ready_step <= k)
            });
            if !serving_elsewhere {
                return Ok(false);
            }
        }
        // Simulate the rescheduling on the other ready nodes before evicting anything
        // (`targets` is restored when the pods do not all fit).
        let mut landing = Vec::with_capacity(on_node.len());
        let mut fits = true;
        for &(_, w) in &on_node {
            let to = self.choose_node(w, targets, t, Some(n))?;
            let Some(to) = to.filter(|&to| self.nodes[to].ready(k)) else {
                fits = false;
                break;
            };
            let tw = &self.trace[w];
            targets[to].allocated.cpu += tw.cpu;
            targets[to].allocated.memory += tw.memory_gib * GIB;
            landing.push((to, w));
        }
        if !fits {
            for &(to, w) in &landing {
                let tw = &self.trace[w];
                targets[to].allocated.cpu -= tw.cpu;
                targets[to].allocated.memory -= tw.memory_gib * GIB;
            }
            return Ok(false);
        }
        for (&(id, w), &(to, _)) in on_node.iter().zip(&landing) {
            self.stop_pod(id);
            self.services[w].running.retain(|x| *x != id);
            let new = self.start_pod(w, to, t, true);
            self.services[w].running.push(new);
        }
        let rt = &mut self.nodes[n];
        rt.on = false;
        rt.unneeded_steps = 0;
        self.counters.power_downs += 1;
        Ok(true)
    }
}
