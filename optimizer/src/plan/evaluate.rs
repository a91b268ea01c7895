//! From a class-level solution (replicas per pair) to per-workload assignments and the
//! plan's objective totals.

use std::collections::{BTreeMap, HashMap};

use crate::cost::Objectives;

use super::Totals;
use super::classes::{Instance, dot};

/// Per-workload assignments: workload → target → replicas.
pub(crate) type Assignments = BTreeMap<String, BTreeMap<String, u32>>;

/// Objective units of a class-level solution `x` (replicas per pair); migration counts
/// replicas moved away from where each class runs now.
pub(crate) fn class_units(inst: &Instance<'_>, x: &[u32]) -> Objectives {
    let mut units = Objectives::default();
    let mut used = vec![false; inst.targets.len()];
    for (p, &n) in x.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let pair = &inst.pairs[p];
        let terms = pair.terms.scale(f64::from(n));
        units.energy_wh += terms.energy_wh;
        units.carbon_g += terms.carbon_g;
        units.latency_ms += terms.latency_ms;
        used[pair.target] = true;
    }
    for (t, &u) in used.iter().enumerate() {
        if u {
            units = units.add(&inst.wake[t]);
            if let Some(s) = &inst.stacking[t] {
                units = units.add(&s.per_watt.scale(inst.stacked_excess(t, x)));
            }
        }
    }
    for (c, class) in inst.classes.iter().enumerate() {
        units.migration += f64::from(class.current_elsewhere);
        for &(t, now) in &class.current {
            let placed = inst.pair_of(c, t).map_or(0, |p| x[p]);
            units.migration += f64::from(now.saturating_sub(placed));
        }
    }
    units
}

/// The weighted normalised objective of a class-level solution under `coef`.
pub(crate) fn class_objective(inst: &Instance<'_>, x: &[u32], coef: &Objectives) -> f64 {
    let u = class_units(inst, x);
    dot(coef, &u) + coef.migration * u.migration
}

/// Splits a class-level solution into per-workload assignments, keeping each member's
/// running replicas where they are first so that no more replicas move than the class
/// solution counts.
pub(crate) fn disaggregate(inst: &Instance<'_>, x: &[u32]) -> Assignments {
    let index: HashMap<&str, usize> = inst
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut out: Assignments = inst
        .workloads
        .iter()
        .map(|w| (w.name.clone(), BTreeMap::new()))
        .collect();
    let mut left = vec![0u32; inst.targets.len()];
    for (c, class) in inst.classes.iter().enumerate() {
        let range = inst.class_pairs[c].clone();
        for p in range.clone() {
            left[inst.pairs[p].target] = x[p];
        }
        let mut need: Vec<u32> = class
            .members
            .iter()
            .map(|&w| inst.workloads[w].replicas)
            .collect();
        let give = |out: &mut Assignments, w: usize, t: usize, n: u32| {
            if n > 0
                && let Some(map) = out.get_mut(&inst.workloads[w].name)
            {
                *map.entry(inst.targets[t].name.clone()).or_default() += n;
            }
        };
        // Keep running replicas in place.
        for (k, &w) in class.members.iter().enumerate() {
            for (name, &now) in &inst.workloads[w].current {
                if let Some(&t) = index.get(name.as_str()) {
                    let n = now.min(need[k]).min(left[t]);
                    left[t] -= n;
                    need[k] -= n;
                    give(&mut out, w, t, n);
                }
            }
        }
        // Fill the rest in order.
        let mut k = 0;
        for p in range.clone() {
            let t = inst.pairs[p].target;
            while left[t] > 0 && k < need.len() {
                let n = left[t].min(need[k]);
                left[t] -= n;
                need[k] -= n;
                give(&mut out, class.members[k], t, n);
                if need[k] == 0 {
                    k += 1;
                }
            }
        }
        for p in range {
            left[inst.pairs[p].target] = 0;
        }
    }
    out
}

/// Totals of a plan: energy, carbon and latency from the class solution, migration
/// re-counted per workload from the assignments.
pub(crate) fn totals(inst: &Instance<'_>, x: &[u32], assignments: &Assignments) -> Totals {
    let mut units = class_units(inst, x);
    units.migration = 0.0;
    for w in inst.workloads {
        let placed = assignments.get(&w.name);
        for (target, &now) in &w.current {
            let kept = placed.and_then(|m| m.get(target)).copied().unwrap_or(0);
            units.migration += f64::from(now.saturating_sub(kept));
        }
    }
    let mut used = vec![false; inst.targets.len()];
    for (p, &n) in x.iter().enumerate() {
        if n > 0 {
            used[inst.pairs[p].target] = true;
        }
    }
    let contributions = inst.normalisers.contributions(&units, &inst.weights, false);
    Totals {
        units,
        contributions,
        objective: contributions.total(),
        targets_used: used.iter().filter(|&&u| u).count(),
        targets_woken: used
            .iter()
            .enumerate()
            .filter(|&(t, &u)| u && inst.is_off(t))
            .count(),
    }
}
