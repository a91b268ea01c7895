//! The objective terms shared by per-pod scoring and the placement MILP.
//!
//! Both paths price a replica of a workload on a target with [`replica_cost`], the idle
//! power of waking a target with [`wake_cost`], and turn units into comparable,
//! dimensionless numbers with the same [`Normalisers`], so extender scores and MILP plans
//! agree.
//!
//! Units: energy in Wh over the workload's expected duration, carbon in gCO2e (energy ×
//! the target's mean grid intensity over that duration), latency in ms (mean over the
//! workload's user regions), migration in replicas moved.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Resource, Target, Workload};
use crate::weights::Weights;

/// Values of the four objectives, in their units (Wh, gCO2e, ms, replicas moved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    /// Energy, Wh.
    pub energy_wh: f64,
    /// Emissions, gCO2e.
    pub carbon_g: f64,
    /// Latency, ms (per replica; summed over replicas in plan totals).
    pub latency_ms: f64,
    /// Replicas moved away from where they run now.
    pub migration: f64,
}

impl Objectives {
    /// Component-wise sum.
    pub fn add(&self, o: &Objectives) -> Objectives {
        Objectives {
            energy_wh: self.energy_wh + o.energy_wh,
            carbon_g: self.carbon_g + o.carbon_g,
            latency_ms: self.latency_ms + o.latency_ms,
            migration: self.migration + o.migration,
        }
    }

    /// Every component multiplied by `k`.
    pub fn scale(&self, k: f64) -> Objectives {
        Objectives {
            energy_wh: self.energy_wh * k,
            carbon_g: self.carbon_g * k,
            latency_ms: self.latency_ms * k,
            migration: self.migration * k,
        }
    }
}

/// What one replica of a workload costs on a target (its wake cost excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCost {
    /// Predicted incremental power, watts.
    pub incremental_watts: f64,
    /// The four objective terms of this replica.
    pub terms: Objectives,
}

/// Prices one replica of `workload` on `target` given the predicted incremental watts;
/// `latency` fills in the regions whose latency to `target` is unknown.
pub fn replica_cost(
    workload: &Workload,
    target: &Target,
    incremental_watts: f64,
    at: DateTime<Utc>,
    latency: &NeutralLatency,
) -> ReplicaCost {
    let hours = workload.expected_duration_s.max(1.0) / 3600.0;
    let energy_wh = incremental_watts.max(0.0) * hours;
    let intensity = target.carbon.mean_over(at, workload.duration());
    ReplicaCost {
        incremental_watts: incremental_watts.max(0.0),
        terms: Objectives {
            energy_wh,
            carbon_g: energy_wh / 1000.0 * intensity,
            latency_ms: latency.mean_latency(workload, target),
            migration: migration_per_replica(workload, &target.name),
        },
    }
}

/// What waking a target that is off costs over `horizon` (zero when it is already on).
pub fn wake_cost(target: &Target, horizon: Duration, at: DateTime<Utc>) -> Objectives {
    if target.powered_on {
        return Objectives::default();
    }
    let hours = horizon.num_milliseconds().max(1000) as f64 / 3.6e6;
    let energy_wh = target.idle_watts.max(0.0) * hours;
    Objectives {
        energy_wh,
        carbon_g: energy_wh / 1000.0 * target.carbon.mean_over(at, horizon),
        latency_ms: 0.0,
        migration: 0.0,
    }
}

/// Mean latency from the workload's user regions (the keys of its SLO) to the target;
/// `None` when a region's latency is unknown. `Some(0)` for a workload without regions.
pub fn mean_latency(workload: &Workload, target: &Target) -> Option<f64> {
    if workload.latency_slo_ms.is_empty() {
        return Some(0.0);
    }
    let mut sum = 0.0;
    for region in workload.latency_slo_ms.keys() {
        sum += target.latency_ms.get(region)?;
    }
    Some(sum / workload.latency_slo_ms.len() as f64)
}

/// The latency charged from a user region to a target that has none known for it: the
/// mean over the decision's targets that know it, so that a gap in ecoplace's latency data
/// neither favours nor penalises a target (and never makes it infeasible).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeutralLatency {
    /// Per user region, the mean latency over the targets that know it, ms.
    by_region: BTreeMap<String, f64>,
}

impl NeutralLatency {
    /// The neutral latency of each of `workload`'s user regions over `targets`.
    pub fn of<'a>(workload: &Workload, targets: impl IntoIterator<Item = &'a Target>) -> Self {
        if workload.latency_slo_ms.is_empty() {
            return Self::default();
        }
        let mut sums: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
        for t in targets {
            for region in workload.latency_slo_ms.keys() {
                if let Some(&ms) = t.latency_ms.get(region) {
                    let e = sums.entry(region).or_default();
                    e.0 += ms;
                    e.1 += 1;
                }
            }
        }
        Self {
            by_region: sums
                .into_iter()
                .map(|(r, (sum, n))| (r.to_string(), sum / f64::from(n)))
                .collect(),
        }
    }

    /// Mean latency from the workload's user regions to `target`, each region's neutral
    /// value standing in where the target's is unknown (0 where no target knows it); 0 for
    /// a workload without user regions.
    pub fn mean_latency(&self, workload: &Workload, target: &Target) -> f64 {
        if workload.latency_slo_ms.is_empty() {
            return 0.0;
        }
        let sum: f64 = workload
            .latency_slo_ms
            .keys()
            .map(|r| {
                target
                    .latency_ms
                    .get(r)
                    .or_else(|| self.by_region.get(r))
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum();
        sum / workload.latency_slo_ms.len() as f64
    }
}

/// Migration charged to one replica placed on `target`: 0 when the workload has no
/// current placement or already runs there, else 1 (a replica moves in).
///
/// This equals the MILP's "replicas moved away" count for a single replica, and for
/// plans as a whole the two counts are equal because replicas are conserved.
pub fn migration_per_replica(workload: &Workload, target: &str) -> f64 {
    if workload.current.is_empty() || workload.current.get(target).copied().unwrap_or(0) > 0 {
        0.0
    } else {
        1.0
    }
}

/// Why one replica of a workload cannot go to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Infeasibility {
    /// The target is in the workload's denied list.
    Denied,
    /// The workload has an allowed list and the target is not on it.
    NotAllowed,
    /// Not enough free resource for one replica.
    Capacity {
        /// The resource short.
        resource: Resource,
        /// What one replica requests.
        need: f64,
        /// What is free.
        free: f64,
    },
    /// A user region's latency is above its SLO.
    Latency {
        /// The user region.
        region: String,
        /// Latency from that region, ms.
        latency_ms: f64,
        /// The SLO, ms.
        slo_ms: f64,
    },
    /// One replica would push the target over its power cap.
    PowerCap {
        /// Power with the replica (and idle power if woken), watts.
        watts: f64,
        /// The cap, watts.
        cap_watts: f64,
    },
}

/// A resource amount as people read it: cores to the millicore, memory in MiB or GiB.
fn amount(resource: Resource, v: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    match resource {
        Resource::Memory if v.abs() >= 1024.0 * MIB => format!("{:.2} GiB", v / (1024.0 * MIB)),
        Resource::Memory => format!("{:.0} MiB", v / MIB),
        _ => format!("{}", (v * 1000.0).round() / 1000.0),
    }
}

impl std::fmt::Display for Infeasibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Infeasibility::Denied => write!(f, "denied by policy"),
            Infeasibility::NotAllowed => write!(f, "not in the allowed targets"),
            Infeasibility::Capacity {
                resource,
                need,
                free,
            } => write!(
                f,
                "needs {} {resource}, {} free",
                amount(*resource, *need),
                amount(*resource, *free)
            ),
            Infeasibility::Latency {
                region,
                latency_ms,
                slo_ms,
            } => write!(f, "latency from {region} {latency_ms} ms > SLO {slo_ms} ms"),
            Infeasibility::PowerCap { watts, cap_watts } => {
                write!(f, "would draw {watts:.0} W > cap {cap_watts:.0} W")
            }
        }
    }
}

/// Every reason one replica of `workload` cannot run on `target` (empty when it can).
///
/// Pair-level rules only: policy lists, capacity for one replica, latency SLOs (where the
/// latency is known) and the power cap. Rules about several replicas (spread, anti-affinity, replica counts) belong
/// to plans.
pub fn check_pair(
    workload: &Workload,
    target: &Target,
    incremental_watts: f64,
) -> Vec<Infeasibility> {
    let mut why = Vec::new();
    if workload.denied_targets.contains(&target.name) {
        why.push(Infeasibility::Denied);
    }
    if !workload.allowed_targets.is_empty() && !workload.allowed_targets.contains(&target.name) {
        why.push(Infeasibility::NotAllowed);
    }
    let free = target.free();
    for r in Resource::ALL {
        let need = workload.requests.get(r);
        if need > 0.0 && need > free.get(r) + 1e-9 {
            why.push(Infeasibility::Capacity {
                resource: r,
                need,
                free: free.get(r),
            });
        }
    }
    // A region whose latency to the target is unknown never fails it: the gap is
    // ecoplace's missing data, priced neutrally ([`NeutralLatency`]).
    for (region, &slo) in &workload.latency_slo_ms {
        if let Some(&ms) = target.latency_ms.get(region)
            && ms > slo
        {
            why.push(Infeasibility::Latency {
                region: region.clone(),
                latency_ms: ms,
                slo_ms: slo,
            });
        }
    }
    if let Some(cap) = target.power_cap_watts {
        let base = if target.powered_on {
            target.current_watts()
        } else {
            target.idle_watts
        };
        let watts = base + incremental_watts.max(0.0);
        if watts > cap + 1e-9 {
            why.push(Infeasibility::PowerCap {
                watts,
                cap_watts: cap,
            });
        }
    }
    why
}

/// Per-objective scales that make the terms dimensionless and comparable.
///
/// For each objective, the spread (max − min) of the per-replica cost, wake cost of an
/// idle target included, over every feasible (workload, target) pair of the decision. A
/// normalised value of 1 is the gap between the best and worst place a replica could go.
/// An objective on which every choice is equal gets a scale of 0 and does not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Normalisers {
    /// Per-objective spread, in the objective's unit.
    pub spread: Objectives,
    /// Per-objective minimum, in the objective's unit.
    pub min: Objectives,
}

/// Accumulates the per-objective range over feasible pairs.
#[derive(Debug, Clone, Copy)]
pub struct NormaliserBuilder {
    min: Objectives,
    max: Objectives,
    seen: bool,
}

impl Default for NormaliserBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NormaliserBuilder {
    /// An empty range.
    pub fn new() -> Self {
        let inf = Objectives {
            energy_wh: f64::INFINITY,
            carbon_g: f64::INFINITY,
            latency_ms: f64::INFINITY,
            migration: f64::INFINITY,
        };
        Self {
            min: inf,
            max: inf.scale(-1.0),
            seen: false,
        }
    }

    /// Adds one feasible pair's per-replica cost including its target's wake cost.
    pub fn add(&mut self, o: &Objectives) {
        self.seen = true;
        self.min.energy_wh = self.min.energy_wh.min(o.energy_wh);
        self.min.carbon_g = self.min.carbon_g.min(o.carbon_g);
        self.min.latency_ms = self.min.latency_ms.min(o.latency_ms);
        self.min.migration = self.min.migration.min(o.migration);
        self.max.energy_wh = self.max.energy_wh.max(o.energy_wh);
        self.max.carbon_g = self.max.carbon_g.max(o.carbon_g);
        self.max.latency_ms = self.max.latency_ms.max(o.latency_ms);
        self.max.migration = self.max.migration.max(o.migration);
    }

    /// The scales (all zero when no pair was added).
    pub fn build(&self) -> Normalisers {
        if !self.seen {
            return Normalisers::default();
        }
        Normalisers {
            spread: Objectives {
                energy_wh: self.max.energy_wh - self.min.energy_wh,
                carbon_g: self.max.carbon_g - self.min.carbon_g,
                latency_ms: self.max.latency_ms - self.min.latency_ms,
                migration: self.max.migration - self.min.migration,
            },
            min: self.min,
        }
    }
}

/// Per-objective contributions to a weighted, normalised cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Contributions {
    /// Weighted normalised carbon.
    pub carbon: f64,
    /// Weighted normalised energy.
    pub energy: f64,
    /// Weighted normalised latency.
    pub latency: f64,
    /// Weighted normalised migration.
    pub migration: f64,
}

impl Contributions {
    /// Sum of the contributions.
    pub fn total(&self) -> f64 {
        self.carbon + self.energy + self.latency + self.migration
    }
}

/// `value / spread`, 0 when the spread is negligible.
fn ratio(value: f64, spread: f64) -> f64 {
    if spread > 1e-12 { value / spread } else { 0.0 }
}

impl Normalisers {
    /// Weighted normalised contributions of `o`, measured from the minimum when
    /// `from_min` (per-replica scores in 0..=weight) or from zero (plan totals, linear).
    pub fn contributions(&self, o: &Objectives, w: &Weights, from_min: bool) -> Contributions {
        let base = if from_min {
            self.min
        } else {
            Objectives::default()
        };
        Contributions {
            carbon: w.carbon * ratio(o.carbon_g - base.carbon_g, self.spread.carbon_g),
            energy: w.energy * ratio(o.energy_wh - base.energy_wh, self.spread.energy_wh),
            latency: w.latency * ratio(o.latency_ms - base.latency_ms, self.spread.latency_ms),
            migration: w.migration * ratio(o.migration - base.migration, self.spread.migration),
        }
    }

    /// Per-unit coefficients of a weighted linear objective: (carbon/g, energy/Wh,
    /// latency/ms, migration/replica).
    pub fn coefficients(&self, w: &Weights) -> Objectives {
        Objectives {
            energy_wh: w.energy * ratio(1.0, self.spread.energy_wh),
            carbon_g: w.carbon * ratio(1.0, self.spread.carbon_g),
            latency_ms: w.latency * ratio(1.0, self.spread.latency_ms),
            migration: w.migration * ratio(1.0, self.spread.migration),
        }
    }
}
