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
            &self.with_headroom(targets),
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

    /// Re-plans, with the MILP (migration cost included), what may change this round: each
    /// service's replicas waiting for a node and the running replicas its
    /// PodDisruptionBudget (`maxUnavailable: 1`) lets move — one per service and round,
    /// and none while fewer than two serve. The replica offered is the one that costs most
    /// where it runs (its node's idle power shared by the node's pods, at the node's grid
    /// intensity); every other replica stays, as the node's allocation. A node whose every
    /// pod may move is offered asleep: the plan pays its idle power if it keeps it, so it
    /// can empty nodes for power-down when that is worth the moves.
    pub(super) fn rebalance(&mut self, t: DateTime<Utc>) -> Result<()> {
        let Some(weights) = self.policy.weights() else {
            return Ok(());
        };
        let mut movable: Vec<Option<u64>> = vec![None; self.services.len()];
        for (i, s) in self.services.iter().enumerate() {
            let serving = s
                .running
                .iter()
                .filter(|id| self.pods.get(id).is_some_and(|p| p.ready_step <= self.k))
                .count();
            if serving < 2 {
                continue;
            }
            movable[i] = s
                .running
                .iter()
                .filter_map(|id| Some((*id, self.pods.get(id)?)))
                .max_by(|a, b| {
                    self.stay_cost(a.1)
                        .total_cmp(&self.stay_cost(b.1))
                        .then(a.0.cmp(&b.0))
                })
                .map(|(id, _)| id);
        }
        let mut targets = self.targets(t);
        let mut fixed_used = vec![0.0; self.nodes.len()];
        let mut fixed_req = vec![Resources::default(); self.nodes.len()];
        for (id, p) in &self.pods {
            let free =
                self.trace[p.workload].kind == Kind::Service && movable[p.workload] == Some(*id);
            if !free {
                fixed_used[p.node] += self.pod_usage(p, t);
                fixed_req[p.node].cpu += p.requests.cpu;
                fixed_req[p.node].memory += p.requests.memory;
            }
        }
        for (n, target) in targets.iter_mut().enumerate() {
            let ty = self.fleet.node_type(n);
            target.allocated = fixed_req[n];
            target.utilisation = ty.utilisation(fixed_used[n]);
            target.powered_on = fixed_req[n].cpu > 0.0 || fixed_req[n].memory > 0.0;
        }
        let targets = self.with_headroom(&targets);
        let mut services = Vec::new();
        let mut workloads = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let mut current: BTreeMap<String, u32> = BTreeMap::new();
            if let Some(p) = movable[i].and_then(|id| self.pods.get(&id)) {
                current.insert(self.fleet.nodes[p.node].name.clone(), 1);
            }
            let replicas = current.len() as u32 + s.pending;
            if replicas == 0 {
                continue;
            }
            services.push(i);
            workloads.push(Workload {
                replicas,
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
            let (Some(&to), Some(&from)) = (arrivals.get(fill), departures.first()) else {
                continue;
            };
            let id = movable[s].filter(|id| self.pods.get(id).is_some_and(|p| p.node == from));
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

    /// The targets as a MILP plans on them with ecoplace's headroom: per cluster, its
    /// reserve (at most half its awake cores) is withheld in whole blocks from the awake
    /// nodes with the most free cores, so the plan leaves room a replica fits in for the
    /// growth it is kept for, and moves work that may run elsewhere out of a cluster that
    /// runs short. Unchanged for policies without headroom.
    fn with_headroom(&self, targets: &[Target]) -> Vec<Target> {
        let mut out = targets.to_vec();
        if !self.policy.keeps_headroom() || self.reserve.is_empty() {
            return out;
        }
        for (c, r) in self.reserve.iter().enumerate() {
            let mut awake: Vec<usize> = (0..out.len())
                .filter(|&n| self.nodes[n].on && self.fleet.nodes[n].cluster == c)
                .collect();
            let cores: f64 = awake.iter().map(|&n| out[n].capacity.cpu).sum();
            let mut left = r.cores.min(0.5 * cores);
            let free = |t: &Target| t.capacity.cpu - t.allocated.cpu;
            awake.sort_by(|&a, &b| free(&out[b]).total_cmp(&free(&out[a])).then(a.cmp(&b)));
            for n in awake {
                if left <= 0.0 {
                    break;
                }
                let blocks = if r.block > 0.0 {
                    (left / r.block).ceil() * r.block
                } else {
                    left
                };
                let held = blocks.min(out[n].capacity.cpu);
                out[n].capacity.cpu -= held;
                left -= held;
            }
        }
        out
    }

    /// What one replica costs where it runs, for choosing the one its budget lets move:
    /// its node's idle power shared by the node's pods, at the node's grid intensity now.
    fn stay_cost(&self, p: &super::Pod) -> f64 {
        let rt = &self.nodes[p.node];
        let idle = self.fleet.node_type(p.node).idle_watts() / rt.pods.max(1) as f64;
        let intensity = self.outlooks[self.fleet.nodes[p.node].cluster].now_g_per_kwh;
        (idle + p.requests.cpu) * intensity
    }
}
