//! Placement policies: how one pod is placed (per-pod path), and whether a policy uses
//! the placement MILP for batch rounds and rebalancing.
//!
//! `default` is kube-scheduler's LeastAllocated spreading over awake nodes; `autoscaler` is
//! the same scheduler in a fleet run by cluster-autoscaler (underused nodes drained and
//! removed); `peaks` is the PEAKS power-delta score; `energy`, `carbon` and `balanced` are
//! the optimizer's weight presets through `optimizer::score_targets` (per pod) and
//! `optimizer::plan` (MILP), the code paths production runs, in the same
//! cluster-autoscaler fleet as `autoscaler`.

use std::borrow::Borrow;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use optimizer::cost::check_pair;
use optimizer::{PowerModel, Target, Weights, Workload, best_target, score_targets};
use serde::Serialize;

/// A placement policy under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// kube-scheduler-like: LeastAllocated spreading over awake nodes, carbon-blind.
    Default,
    /// `default` in a cluster-autoscaler fleet: underused nodes drained and powered off.
    Autoscaler,
    /// PEAKS: the node with the smallest predicted power increase (waking included).
    Peaks,
    /// ecoplace, `energy` weights.
    Energy,
    /// ecoplace, `carbon` weights.
    Carbon,
    /// ecoplace, `balanced` weights.
    Balanced,
    /// `balanced`, and batch jobs held until the cleanest forecast window that still meets
    /// their deadline (`optimizer::shift::choose_start`).
    #[serde(rename = "balanced-shift")]
    BalancedShift,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 7] = [
        Policy::Default,
        Policy::Autoscaler,
        Policy::Peaks,
        Policy::Energy,
        Policy::Carbon,
        Policy::Balanced,
        Policy::BalancedShift,
    ];

    /// The policy's name (CLI, JSON keys).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Default => "default",
            Policy::Autoscaler => "autoscaler",
            Policy::Peaks => "peaks",
            Policy::Energy => "energy",
            Policy::Carbon => "carbon",
            Policy::Balanced => "balanced",
            Policy::BalancedShift => "balanced-shift",
        }
    }

    /// Parses a comma-separated list of policy names (order kept, duplicates dropped).
    pub fn parse_list(s: &str) -> Result<Vec<Policy>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some(p) = Policy::ALL.into_iter().find(|p| p.name() == part) else {
                bail!(
                    "--policies: unknown policy `{part}` (known: default, autoscaler, peaks, energy, carbon, balanced, balanced-shift)"
                );
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            bail!("--policies: give at least one policy");
        }
        Ok(out)
    }

    /// The optimizer weights of the per-pod score (`None` for LeastAllocated).
    pub fn weights(self) -> Option<Weights> {
        match self {
            Policy::Default | Policy::Autoscaler => None,
            Policy::Peaks => Some(Weights {
                carbon: 0.0,
                energy: 1.0,
                latency: 0.0,
                migration: 0.0,
            }),
            Policy::Energy => Some(Weights::ENERGY),
            Policy::Carbon => Some(Weights::CARBON),
            Policy::Balanced | Policy::BalancedShift => Some(Weights::BALANCED),
        }
    }

    /// Whether batch jobs are placed in periodic MILP rounds and running services are
    /// rebalanced by the MILP (else every pod is placed on arrival, and never moved).
    pub fn uses_milp(self) -> bool {
        matches!(
            self,
            Policy::Energy | Policy::Carbon | Policy::Balanced | Policy::BalancedShift
        )
    }

    /// Whether batch jobs wait for the cleanest window before their deadline.
    pub fn shifts(self) -> bool {
        self == Policy::BalancedShift
    }

    /// How the fleet's nodes are powered down under this policy.
    pub fn lifecycle(self) -> Lifecycle {
        match self {
            Policy::Default | Policy::Peaks => Lifecycle::EmptyNodes,
            Policy::Autoscaler
            | Policy::Energy
            | Policy::Carbon
            | Policy::Balanced
            | Policy::BalancedShift => Lifecycle::Autoscaler,
        }
    }

    /// Whether the policy keeps ecoplace's headroom of ready CPU per cluster.
    pub fn keeps_headroom(self) -> bool {
        self.uses_milp()
    }

    /// What the policy does, in one line (for the report).
    pub fn describe(self) -> &'static str {
        match self {
            Policy::Default => {
                "kube-scheduler LeastAllocated over awake nodes; wakes a node only when none fits; never moves pods; powers down only empty nodes"
            }
            Policy::Autoscaler => {
                "LeastAllocated as `default`, in a cluster-autoscaler fleet: a node under 50 % requested for 10 min whose pods fit elsewhere is drained and powered off"
            }
            Policy::Peaks => {
                "per pod, the node with the smallest predicted power increase (PEAKS; idle power of a sleeping node included); never moves pods; powers down only empty nodes"
            }
            Policy::Energy => {
                "score_targets with energy weights per pod; MILP batch rounds and hourly MILP rebalancing; cluster-autoscaler fleet"
            }
            Policy::Carbon => {
                "score_targets with carbon weights per pod; MILP batch rounds and hourly MILP rebalancing; cluster-autoscaler fleet"
            }
            Policy::Balanced => {
                "score_targets with balanced weights per pod; MILP batch rounds and hourly MILP rebalancing; cluster-autoscaler fleet"
            }
            Policy::BalancedShift => {
                "`balanced`, and each batch job held until the cleanest forecast window that still meets its deadline (optimizer::shift, 1 h slots, a quarter of each cluster's cores per slot)"
            }
        }
    }

    /// Picks a target for one pod of `workload` (index into `targets`), or `None` when no
    /// target may take it.
    pub fn place_one<T: Borrow<Target>>(
        self,
        workload: &Workload,
        targets: &[T],
        at: DateTime<Utc>,
        power: &dyn PowerModel,
    ) -> Result<Option<usize>> {
        match self.weights() {
            None => Ok(least_allocated(workload, targets)),
            Some(w) => {
                let scores = score_targets(workload, targets, &w, at, power)?;
                Ok(best_target(&scores))
            }
        }
    }
}

impl Policy {
    /// [`Policy::place_one`], preferring targets `keeps` says keep their cluster's headroom
    /// (`optimizer::headroom::best_keeping`) for the policies that keep headroom.
    pub fn place_one_keeping<T: Borrow<Target>>(
        self,
        workload: &Workload,
        targets: &[T],
        at: DateTime<Utc>,
        power: &dyn PowerModel,
        keeps: impl Fn(usize) -> bool,
    ) -> Result<Option<usize>> {
        match self.weights() {
            Some(w) if self.keeps_headroom() => {
                let scores = score_targets(workload, targets, &w, at, power)?;
                Ok(optimizer::headroom::best_keeping(&scores, keeps))
            }
            _ => self.place_one(workload, targets, at, power),
        }
    }
}

/// kube-scheduler's LeastAllocated: the feasible node with the most free CPU and memory
/// (mean of the free fractions after placing); awake nodes first, lowest index on ties.
pub fn least_allocated<T: Borrow<Target>>(workload: &Workload, targets: &[T]) -> Option<usize> {
    let score = |t: &Target| {
        let free = |cap: f64, used: f64, req: f64| {
            if cap > 0.0 {
                (cap - used - req) / cap
            } else {
                0.0
            }
        };
        let r = &workload.requests;
        (free(t.capacity.cpu, t.allocated.cpu, r.cpu)
            + free(t.capacity.memory, t.allocated.memory, r.memory))
            / 2.0
    };
    let mut best: Option<(bool, f64, usize)> = None;
    for (i, t) in targets.iter().map(Borrow::borrow).enumerate() {
        if !check_pair(workload, t, 0.0).is_empty() {
            continue;
        }
        let (on, s) = (t.powered_on, score(t));
        if best.is_none_or(|(b_on, b_s, _)| (on && !b_on) || (on == b_on && s > b_s)) {
            best = Some((on, s, i));
        }
    }
    best.map(|b| b.2)
}

/// Who powers nodes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// A node empty for a few steps is powered down (no drains).
    EmptyNodes,
    /// cluster-autoscaler: empty nodes and nodes under the utilisation threshold whose
    /// pods fit elsewhere are removed after the unneeded time (engine/autoscaler.rs).
    Autoscaler,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use optimizer::Resources;

    fn node(name: &str, used: f64, on: bool) -> Target {
        Target {
            name: name.into(),
            capacity: Resources::new(10.0, 10e9, 0.0),
            allocated: Resources::new(used, 0.0, 0.0),
            powered_on: on,
            ..Target::default()
        }
    }

    #[test]
    fn least_allocated_spreads_over_awake_nodes_first() {
        let w = Workload {
            requests: Resources::new(2.0, 1e9, 0.0),
            ..Workload::default()
        };
        let t = vec![
            node("a", 5.0, true),
            node("b", 1.0, true),
            node("c", 0.0, false),
        ];
        assert_eq!(least_allocated(&w, &t), Some(1));
        let t = vec![node("a", 9.0, true), node("c", 0.0, false)];
        assert_eq!(least_allocated(&w, &t), Some(1));
        let t = vec![node("a", 9.0, true)];
        assert_eq!(least_allocated(&w, &t), None);
    }

    #[test]
    fn policy_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            Policy::parse_list("default, carbon,default").unwrap(),
            vec![Policy::Default, Policy::Carbon]
        );
        let e = Policy::parse_list("default,greenest")
            .unwrap_err()
            .to_string();
        assert!(e.contains("greenest"), "{e}");
    }
}
