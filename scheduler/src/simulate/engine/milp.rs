//! The MILP paths of a simulation: periodic batch rounds and hourly rebalancing, both
//! through `optimizer::plan`.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use optimizer::{Resources, Target, Workload, plan};

use super::Sim;
use crate::simulate::trace::Kind;

impl Sim<'_> {
    /// A MILP round over the queued batch jobs; on failure the per-pod path places them.
    pub(super) fn batch_round(&mut self, targets: &mut [Target], t: DateTime<Utc>) -> Result<()> {
        let Some(weights) = self.policy.weights() else {
            return Ok(());
        };
        let jobs: Vec<usize> = self.queue.clone();
        let workloads: Vec<Workload> = jobs
            .iter()
            .map(|&j| Workload {
                replicas: self.jobs[j].pending,
                ..self.workload(j)
            })
            .collect();
        self.counters.milp_solves += 1;
        match plan(
            &workloads,
            targets,
            &weights,
            t,
            self.power,
            &self.settings.milp,
        ) {
            Ok(p) => {
                for (&j, w) in jobs.iter().zip(&workloads) {
                    let Some(assigned) = p.assignments.get(&w.name) else {
                        continue;
                    };
                    for (node, &count) in assigned {
                        let Some(n) = targets.iter().position(|x| &x.name == node) else {
                            continue;
                        };
                        for _ in 0..count {
                            self.start_pod(j, n, t, false);
                            self.jobs[j].pending -= 1;
                            self.refresh_target(&mut targets[n], n, j);
                        }
                    }
                }
            }
            Err(_) => {
                self.counters.milp_failures += 1;
                self.place_jobs_per_pod(&jobs, targets, t)?;
            }
        }
        Ok(())
    }

    /// Re-plans every service's replicas, running and waiting for a node, with the MILP
    /// (migration cost included). Nodes with no batch pod are offered asleep: the plan pays
    /// the idle power of each node it keeps, so it can empty nodes for power-down when that
    /// is worth the moves. Moves honour a PodDisruptionBudget of `maxUnavailable: 1`, as
    /// evictions do: at most one replica of a service moves per round, and never the only
    /// one.
    pub(super) fn rebalance(&mut self, t: DateTime<Utc>) -> Result<()> {
        let Some(weights) = self.policy.weights() else {
            return Ok(());
        };
        let mut targets = self.targets(t);
        let mut batch_used = vec![0.0; self.nodes.len()];
        let mut batch_req = vec![Resources::default(); self.nodes.len()];
        for p in self.pods.values() {
            if self.trace[p.workload].kind == Kind::Batch {
                batch_used[p.node] += self.pod_usage(p, t);
                batch_req[p.node].cpu += p.requests.cpu;
                batch_req[p.node].memory += p.requests.memory;
            }
        }
        for (n, target) in targets.iter_mut().enumerate() {
            let ty = self.fleet.node_type(n);
            target.allocated = batch_req[n];
            target.utilisation = ty.utilisation(batch_used[n]);
            target.powered_on = batch_req[n].cpu > 0.0 || batch_req[n].memory > 0.0;
        }
        // Plan with the headroom: each node offers its cluster's share of the reserve less
        // (at most half its cores), so the plan leaves room for the growth it is kept for
        // and moves work that may run elsewhere out of a cluster that runs short.
        if self.policy.keeps_headroom() && !self.reserve.is_empty() {
            let mut awake = vec![0.0; self.fleet.clusters.len()];
            for (n, rt) in self.nodes.iter().enumerate() {
                if rt.on {
                    awake[self.fleet.nodes[n].cluster] += self.fleet.node_type(n).cores;
                }
            }
            for (n, target) in targets.iter_mut().enumerate() {
                let c = self.fleet.nodes[n].cluster;
                if awake[c] > 0.0 {
                    let f = (self.reserve[c] / awake[c]).clamp(0.0, 0.5);
                    target.capacity.cpu *= 1.0 - f;
                }
            }
        }
        let mut services = Vec::new();
        let mut workloads = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            if s.running.is_empty() && s.pending == 0 {
                continue;
            }
            let mut current: BTreeMap<String, u32> = BTreeMap::new();
            for id in &s.running {
                if let Some(p) = self.pods.get(id) {
                    *current
                        .entry(self.fleet.nodes[p.node].name.clone())
                        .or_default() += 1;
                }
            }
            services.push(i);
            workloads.push(Workload {
                replicas: s.running.len() as u32 + s.pending,
                current,
                ..self.workload(i)
            });
        }
        if workloads.is_empty() {
            return Ok(());
        }
        self.counters.milp_solves += 1;
        let p = match plan(
            &workloads,
            &targets,
            &weights,
            t,
            self.power,
            &self.settings.milp,
        ) {
            Ok(p) => p,
            Err(_) => {
                self.counters.milp_failures += 1;
                return Ok(());
            }
        };
        let index: BTreeMap<&str, usize> = self
            .fleet
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        // Per service: where the plan has more replicas than run now (arrivals), and
        // where fewer (departures). Waiting replicas fill arrivals first; then at most one
        // running replica moves (the budget), and only when another one keeps serving.
        // Stop what leaves a node first, then start what arrives: capacity holds.
        let mut starts = Vec::new();
        for (&s, w) in services.iter().zip(&workloads) {
            let want = p.assignments.get(&w.name).cloned().unwrap_or_default();
            let mut arrivals: Vec<usize> = Vec::new();
            for (node, &count) in &want {
                let have = w.current.get(node).copied().unwrap_or(0);
                if let Some(&n) = index.get(node.as_str()) {
                    arrivals.extend(std::iter::repeat_n(n, count.saturating_sub(have) as usize));
                }
            }
            let mut departures: Vec<usize> = Vec::new();
            for (node, &have) in &w.current {
                let keep = want.get(node).copied().unwrap_or(0);
                if let Some(&n) = index.get(node.as_str()) {
                    departures.extend(std::iter::repeat_n(n, have.saturating_sub(keep) as usize));
                }
            }
            let waiting = self.services[s].pending as usize;
            let fill = waiting.min(arrivals.len());
            for &n in &arrivals[..fill] {
                starts.push((s, n, false));
            }
            self.services[s].pending -= fill as u32;
            let serving = self.services[s]
                .running
                .iter()
                .filter(|id| self.pods.get(id).is_some_and(|p| p.ready_step <= self.k))
                .count();
            let (Some(&to), Some(&from)) = (arrivals.get(fill), departures.first()) else {
                continue;
            };
            if serving < 2 {
                continue;
            }
            let id = self.services[s]
                .running
                .iter()
                .rev()
                .copied()
                .find(|id| self.pods.get(id).is_some_and(|p| p.node == from));
            if let Some(id) = id {
                self.stop_pod(id);
                self.services[s].running.retain(|x| *x != id);
                starts.push((s, to, true));
            }
        }
        for (s, n, moved) in starts {
            let id = self.start_pod(s, n, t, moved);
            self.services[s].running.push(id);
        }
        Ok(())
    }
}
