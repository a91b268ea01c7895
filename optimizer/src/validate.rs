//! An independent plan validator: re-checks every hard constraint of a plan from the raw
//! workloads and targets, sharing no code with the MILP (not even [`crate::cost`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{Resource, Target, Workload};
use crate::plan::Plan;
use crate::power::{PowerModel, PowerQuery};

/// Relative tolerance of the numeric checks (capacity, power).
const TOL: f64 = 1e-6;

/// One broken constraint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// The plan names a workload that is not in the input.
    #[error("plan places unknown workload {workload}")]
    UnknownWorkload {
        /// The name in the plan.
        workload: String,
    },
    /// The plan names a target that is not in the input.
    #[error("workload {workload} placed on unknown target {target}")]
    UnknownTarget {
        /// The workload.
        workload: String,
        /// The name in the plan.
        target: String,
    },
    /// Replicas placed differ from replicas wanted.
    #[error("workload {workload}: {placed} replicas placed, {wanted} wanted")]
    ReplicaCount {
        /// The workload.
        workload: String,
        /// Replicas in the plan.
        placed: u64,
        /// Replicas wanted.
        wanted: u32,
    },
    /// A target in the workload's denied list is used.
    #[error("workload {workload} placed on denied target {target}")]
    Denied {
        /// The workload.
        workload: String,
        /// The target.
        target: String,
    },
    /// A target outside the workload's allowed list is used.
    #[error("workload {workload} placed on {target}, which is not allowed")]
    NotAllowed {
        /// The workload.
        workload: String,
        /// The target.
        target: String,
    },
    /// A latency SLO is broken (an unknown latency breaks none: it is priced neutrally).
    #[error(
        "workload {workload} on {target}: latency from {region} {latency_ms} ms, SLO {slo_ms} ms"
    )]
    Latency {
        /// The workload.
        workload: String,
        /// The target.
        target: String,
        /// The user region.
        region: String,
        /// Latency from the region, ms.
        latency_ms: f64,
        /// The SLO.
        slo_ms: f64,
    },
    /// More of a resource requested than free.
    #[error("target {target}: {requested} {resource} requested, {free} free")]
    Capacity {
        /// The target.
        target: String,
        /// The resource.
        resource: Resource,
        /// Sum of the placed requests.
        requested: f64,
        /// Free before the plan.
        free: f64,
    },
    /// A power cap is exceeded.
    #[error("target {target}: {watts:.1} W > cap {cap_watts:.1} W")]
    PowerCap {
        /// The target.
        target: String,
        /// Predicted power with the plan.
        watts: f64,
        /// The cap.
        cap_watts: f64,
    },
    /// More replicas on one target than the spread limit.
    #[error("workload {workload}: {replicas} replicas on {target}, at most {max} allowed")]
    MaxPerTarget {
        /// The workload.
        workload: String,
        /// The target.
        target: String,
        /// Replicas there.
        replicas: u32,
        /// The limit.
        max: u32,
    },
    /// Not exactly the wanted number of distinct targets.
    #[error("workload {workload}: on {used} targets, exactly {wanted} wanted")]
    NumberOfTargets {
        /// The workload.
        workload: String,
        /// Distinct targets used.
        used: usize,
        /// Wanted.
        wanted: u32,
    },
    /// Two replicas of an anti-affinity group share a target.
    #[error("anti-affinity group {group}: {replicas} replicas on {target}")]
    AntiAffinity {
        /// The group.
        group: String,
        /// The target.
        target: String,
        /// Replicas of the group there.
        replicas: u32,
    },
    /// An affinity group is spread over several targets.
    #[error("affinity group {group} spread over {targets:?}")]
    Affinity {
        /// The group.
        group: String,
        /// The targets it uses.
        targets: Vec<String>,
    },
    /// Power caps could not be checked.
    #[error("power model failed, power caps unchecked: {reason}")]
    PowerModel {
        /// The error.
        reason: String,
    },
}

/// Every constraint `plan` breaks (empty when it is valid).
pub fn validate(
    plan: &Plan,
    workloads: &[Workload],
    targets: &[Target],
    power: &dyn PowerModel,
) -> Vec<Violation> {
    validate_assignments(&plan.assignments, workloads, targets, power)
}

/// Every constraint the assignments (workload → target → replicas) break.
pub fn validate_assignments(
    assignments: &BTreeMap<String, BTreeMap<String, u32>>,
    workloads: &[Workload],
    targets: &[Target],
    power: &dyn PowerModel,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let by_name: HashMap<&str, &Workload> =
        workloads.iter().map(|w| (w.name.as_str(), w)).collect();
    let target_of: HashMap<&str, &Target> = targets.iter().map(|t| (t.name.as_str(), t)).collect();
    for name in assignments.keys() {
        if !by_name.contains_key(name.as_str()) {
            out.push(Violation::UnknownWorkload {
                workload: name.clone(),
            });
        }
    }
    // (workload, target, replicas) with both known.
    let mut placed: Vec<(&Workload, &Target, u32)> = Vec::new();
    let empty = BTreeMap::new();
    for w in workloads {
        let map = assignments.get(&w.name).unwrap_or(&empty);
        let total: u64 = map.values().map(|&n| u64::from(n)).sum();
        if total != u64::from(w.replicas) {
            out.push(Violation::ReplicaCount {
                workload: w.name.clone(),
                placed: total,
                wanted: w.replicas,
            });
        }
        let used = map.values().filter(|&&n| n > 0).count();
        if let Some(wanted) = w.number_of_targets
            && used != wanted as usize
        {
            out.push(Violation::NumberOfTargets {
                workload: w.name.clone(),
                used,
                wanted,
            });
        }
        for (tname, &n) in map.iter().filter(|e| *e.1 > 0) {
            let Some(&t) = target_of.get(tname.as_str()) else {
                out.push(Violation::UnknownTarget {
                    workload: w.name.clone(),
                    target: tname.clone(),
                });
                continue;
            };
            pair_rules(w, t, n, &mut out);
            placed.push((w, t, n));
        }
    }
    target_rules(&placed, targets, power, &mut out);
    group_rules(&placed, &mut out);
    out
}

/// Policy lists, latency SLOs and the spread limit of one placement.
fn pair_rules(w: &Workload, t: &Target, n: u32, out: &mut Vec<Violation>) {
    if w.denied_targets.contains(&t.name) {
        out.push(Violation::Denied {
            workload: w.name.clone(),
            target: t.name.clone(),
        });
    }
    if !w.allowed_targets.is_empty() && !w.allowed_targets.contains(&t.name) {
        out.push(Violation::NotAllowed {
            workload: w.name.clone(),
            target: t.name.clone(),
        });
    }
    for (region, &slo) in &w.latency_slo_ms {
        if let Some(&l) = t.latency_ms.get(region)
            && l > slo
        {
            out.push(Violation::Latency {
                workload: w.name.clone(),
                target: t.name.clone(),
                region: region.clone(),
                latency_ms: l,
                slo_ms: slo,
            });
        }
    }
    if let Some(max) = w.max_per_target
        && n > max
    {
        out.push(Violation::MaxPerTarget {
            workload: w.name.clone(),
            target: t.name.clone(),
            replicas: n,
            max,
        });
    }
}

/// Capacity per resource and power caps, summed per target.
fn target_rules(
    placed: &[(&Workload, &Target, u32)],
    targets: &[Target],
    power: &dyn PowerModel,
    out: &mut Vec<Violation>,
) {
    let queries: Vec<PowerQuery<'_>> = placed
        .iter()
        .map(|(w, t, _)| PowerQuery::placing(t, w.cpu_use()))
        .collect();
    let mut watts = vec![0.0; queries.len()];
    let power_ok = match power.incremental_watts(&queries, &mut watts) {
        Ok(()) => true,
        Err(e) => {
            out.push(Violation::PowerModel {
                reason: e.to_string(),
            });
            false
        }
    };
    for t in targets {
        let here: Vec<usize> = (0..placed.len())
            .filter(|&i| placed[i].1.name == t.name)
            .collect();
        if here.is_empty() {
            continue;
        }
        for r in Resource::ALL {
            let requested: f64 = here
                .iter()
                .map(|&i| placed[i].0.requests.get(r) * f64::from(placed[i].2))
                .sum();
            let free = (t.capacity.get(r) - t.allocated.get(r)).max(0.0);
            if requested > free * (1.0 + TOL) + TOL {
                out.push(Violation::Capacity {
                    target: t.name.clone(),
                    resource: r,
                    requested,
                    free,
                });
            }
        }
        if let (Some(cap), true) = (t.power_cap_watts, power_ok) {
            let base = if t.powered_on {
                t.idle_watts + (t.max_watts - t.idle_watts).max(0.0) * t.utilisation.clamp(0.0, 1.0)
            } else {
                t.idle_watts
            };
            let added: f64 = here
                .iter()
                .map(|&i| watts[i].max(0.0) * f64::from(placed[i].2))
                .sum();
            if base + added > cap * (1.0 + TOL) + TOL {
                out.push(Violation::PowerCap {
                    target: t.name.clone(),
                    watts: base + added,
                    cap_watts: cap,
                });
            }
        }
    }
}

/// Anti-affinity (≤ 1 replica of a group per target) and affinity (one target per group).
fn group_rules(placed: &[(&Workload, &Target, u32)], out: &mut Vec<Violation>) {
    let mut anti: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    let mut affinity: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (w, t, n) in placed {
        if let Some(g) = &w.anti_affinity_group {
            *anti.entry((g.as_str(), t.name.as_str())).or_default() += n;
        }
        if let Some(g) = &w.affinity_group {
            affinity
                .entry(g.as_str())
                .or_default()
                .insert(t.name.as_str());
        }
    }
    for ((group, target), replicas) in anti {
        if replicas > 1 {
            out.push(Violation::AntiAffinity {
                group: group.to_string(),
                target: target.to_string(),
                replicas,
            });
        }
    }
    for (group, targets) in affinity {
        if targets.len() > 1 {
            out.push(Violation::Affinity {
                group: group.to_string(),
                targets: targets.into_iter().map(str::to_string).collect(),
            });
        }
    }
}
