//! Explanations: why no plan exists (which rule eliminated which targets, or which
//! capacity is short in aggregate), and what a plan saves.

use serde::{Deserialize, Serialize};

use crate::cost::{self, Infeasibility};
use crate::model::{Resource, Resources, Workload};

use super::classes::Instance;
use super::{Plan, PlanError, PlanStatus};

/// The reasons one target was eliminated for a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReasons {
    /// Target name.
    pub target: String,
    /// Every pair rule it breaks.
    pub reasons: Vec<Infeasibility>,
}

/// Why no placement exists: a sentence, and the per-target details behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfeasibleReport {
    /// The workload that cannot be placed, when one can be singled out.
    pub workload: Option<String>,
    /// What is wrong, in one sentence naming the constraint.
    pub message: String,
    /// Targets eliminated for that workload, with the rules that eliminated them.
    pub eliminated: Vec<TargetReasons>,
}

impl std::fmt::Display for InfeasibleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn fail(workload: Option<&str>, message: String) -> PlanError {
    PlanError::Infeasible(InfeasibleReport {
        workload: workload.map(str::to_string),
        message,
        eliminated: Vec::new(),
    })
}

/// A number without trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `4 cpu`, `8 GiB memory`, `1 gpu`.
pub(crate) fn amount(r: Resource, v: f64) -> String {
    match r {
        Resource::Memory => format!("{} GiB memory", num(v / (1u64 << 30) as f64)),
        _ => format!("{} {r}", num(v)),
    }
}

/// `a, b, c and 4 more`.
fn names<'n>(list: impl Iterator<Item = &'n str>) -> String {
    let all: Vec<&str> = list.collect();
    match all.len() {
        0..=3 => all.join(", "),
        n => format!("{} and {} more", all[..3].join(", "), n - 3),
    }
}

/// `latency ≤ 20 ms to region FR` for each SLO region.
fn latency_phrase(w: &Workload) -> String {
    w.latency_slo_ms
        .iter()
        .filter(|(_, slo)| **slo < crate::model::NO_SLO_MS)
        .map(|(region, slo)| format!("latency ≤ {} ms to region {region}", num(*slo)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Cheap necessary conditions, checked before solving; each failure names its rule.
pub(crate) fn precheck(inst: &Instance<'_>) -> Result<(), PlanError> {
    for (c, class) in inst.classes.iter().enumerate() {
        let w = inst.workload(c);
        let pairs = inst.class_pairs[c].clone();
        if let Some(n) = w.number_of_targets
            && class.replicas < n
        {
            return Err(fail(
                Some(&w.name),
                format!(
                    "workload {} must run on exactly {n} targets but has only {} replicas",
                    w.name, class.replicas
                ),
            ));
        }
        if class.replicas == 0 {
            continue;
        }
        if pairs.is_empty() {
            return Err(PlanError::Infeasible(no_target(inst, c)));
        }
        let room: u64 = pairs.clone().map(|p| u64::from(inst.pairs[p].upper)).sum();
        if room < u64::from(class.replicas) {
            let limit = match (w.anti_affinity_group.as_deref(), w.max_per_target) {
                (Some(g), _) => format!(", anti-affinity group {g} allows 1 per target"),
                (None, Some(m)) => format!(", at most {m} per target"),
                _ => String::new(),
            };
            return Err(fail(
                Some(&w.name),
                format!(
                    "workload {} needs {} replicas but its {} feasible targets ({}) fit at most {room}{limit}",
                    w.name,
                    class.replicas,
                    pairs.len(),
                    names(pairs.map(|p| inst.targets[inst.pairs[p].target].name.as_str())),
                ),
            ));
        }
        if let Some(n) = w.number_of_targets
            && pairs.len() < n as usize
        {
            return Err(fail(
                Some(&w.name),
                format!(
                    "workload {} must run on exactly {n} targets but only {} are feasible ({})",
                    w.name,
                    pairs.len(),
                    names(pairs.map(|p| inst.targets[inst.pairs[p].target].name.as_str())),
                ),
            ));
        }
    }
    for g in &inst.anti_groups {
        let total: u32 = g.classes.iter().map(|&c| inst.classes[c].replicas).sum();
        let mut seen = vec![false; inst.targets.len()];
        for &c in &g.classes {
            for p in inst.class_pairs[c].clone() {
                seen[inst.pairs[p].target] = true;
            }
        }
        let usable = seen.iter().filter(|&&s| s).count();
        if total as usize > usable {
            return Err(fail(
                None,
                format!(
                    "anti-affinity group {} has {total} replicas but only {usable} targets can take one",
                    g.name
                ),
            ));
        }
    }
    aggregate_capacity(inst)
}

/// Hall-type check per resource: the classes that can only use a set of targets must fit
/// in that set's free resources.
fn aggregate_capacity(inst: &Instance<'_>) -> Result<(), PlanError> {
    let nt = inst.targets.len();
    let words = nt.div_ceil(64).max(1);
    let active: Vec<usize> = (0..inst.classes.len())
        .filter(|&c| inst.classes[c].replicas > 0)
        .collect();
    let mut sets = vec![0u64; active.len() * words];
    let mut union = vec![0u64; words];
    for (i, &c) in active.iter().enumerate() {
        for p in inst.class_pairs[c].clone() {
            let t = inst.pairs[p].target;
            sets[i * words + t / 64] |= 1 << (t % 64);
            union[t / 64] |= 1 << (t % 64);
        }
    }
    let subset = |a: &[u64], b: &[u64]| a.iter().zip(b).all(|(x, y)| x & !y == 0);
    let mut candidates: Vec<&[u64]> = vec![&union];
    // Pairwise subsets grow quadratically: only for moderate class counts.
    if active.len() * active.len() * words <= 20_000_000 {
        candidates.extend(sets.chunks(words));
    }
    for set in candidates {
        let members: Vec<usize> = (0..active.len())
            .filter(|&i| subset(&sets[i * words..(i + 1) * words], set))
            .collect();
        let mut need = Resources::default();
        for &i in &members {
            let c = active[i];
            let n = f64::from(inst.classes[c].replicas);
            let req = inst.workload(c).requests;
            need = Resources::new(
                need.cpu + n * req.cpu,
                need.memory + n * req.memory,
                need.gpu + n * req.gpu,
            );
        }
        let in_set = |t: usize| set[t / 64] & (1 << (t % 64)) != 0;
        let mut free = Resources::default();
        for t in (0..nt).filter(|&t| in_set(t)) {
            let f = inst.targets[t].free();
            free = Resources::new(free.cpu + f.cpu, free.memory + f.memory, free.gpu + f.gpu);
        }
        for r in Resource::ALL {
            if need.get(r) > free.get(r) * (1.0 + 1e-9) + 1e-9 {
                let who = names(
                    members
                        .iter()
                        .map(|&i| inst.workload(active[i]).name.as_str()),
                );
                let whom = names(
                    (0..nt)
                        .filter(|&t| in_set(t))
                        .map(|t| inst.targets[t].name.as_str()),
                );
                return Err(fail(
                    None,
                    format!(
                        "not enough {r} in aggregate: workloads {who} need {} but the targets they can use ({whom}) have {} free",
                        amount(r, need.get(r)),
                        amount(r, free.get(r))
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Why class `c` has no feasible target, rule by rule.
pub(crate) fn no_target(inst: &Instance<'_>, c: usize) -> InfeasibleReport {
    let w = inst.workload(c);
    let nt = inst.targets.len();
    let reasons: Vec<Vec<Infeasibility>> = (0..nt)
        .map(|t| cost::check_pair(w, &inst.targets[t], inst.watts[c * nt + t]))
        .collect();
    let has = |t: usize, f: fn(&Infeasibility) -> bool| reasons[t].iter().any(f);
    let policy = |i: &Infeasibility| matches!(i, Infeasibility::Denied | Infeasibility::NotAllowed);
    let latency = |i: &Infeasibility| matches!(i, Infeasibility::Latency { .. });
    let capacity = |i: &Infeasibility| matches!(i, Infeasibility::Capacity { .. });
    let permitted: Vec<usize> = (0..nt).filter(|&t| !has(t, policy)).collect();
    let near: Vec<usize> = permitted
        .iter()
        .copied()
        .filter(|&t| !has(t, latency))
        .collect();
    let roomy: Vec<usize> = near
        .iter()
        .copied()
        .filter(|&t| !has(t, capacity))
        .collect();
    let slo = latency_phrase(w);
    let message = if nt == 0 {
        format!("workload {} has no targets to run on", w.name)
    } else if permitted.is_empty() {
        format!(
            "workload {}: its allowed/denied lists exclude all {nt} targets",
            w.name
        )
    } else if near.is_empty() {
        let closest = permitted
            .iter()
            .filter_map(|&t| {
                let l = cost::mean_latency(w, &inst.targets[t])?;
                Some((t, l))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, l)| format!(" (closest: {} at {} ms)", inst.targets[t].name, num(l)))
            .unwrap_or_default();
        format!(
            "workload {}: no permitted target has {slo}{closest}",
            w.name
        )
    } else if roomy.is_empty() {
        let short: Vec<String> = Resource::ALL
            .into_iter()
            .filter(|&r| {
                near.iter().any(|&t| {
                    reasons[t].iter().any(
                        |i| matches!(i, Infeasibility::Capacity { resource, .. } if *resource == r),
                    )
                })
            })
            .map(|r| amount(r, w.requests.get(r)))
            .collect();
        let scope = if slo.is_empty() {
            if permitted.len() == nt {
                "no target".to_string()
            } else {
                "no permitted target".to_string()
            }
        } else {
            format!("no target with {slo}")
        };
        let most = near
            .iter()
            .max_by(|&&a, &&b| {
                let fa = inst.targets[a].free().cpu;
                fa.total_cmp(&inst.targets[b].free().cpu)
            })
            .map(|&t| {
                let f = inst.targets[t].free();
                format!(
                    " (most free: {} with {}, {})",
                    inst.targets[t].name,
                    amount(Resource::Cpu, f.cpu),
                    amount(Resource::Memory, f.memory)
                )
            })
            .unwrap_or_default();
        format!(
            "workload {} needs {}, {scope} has it free{most}",
            w.name,
            short.join(" and ")
        )
    } else if roomy.iter().all(|&t| !reasons[t].is_empty()) {
        let example = roomy
            .first()
            .and_then(|&t| {
                reasons[t]
                    .iter()
                    .find(|i| matches!(i, Infeasibility::PowerCap { .. }))
                    .map(|i| format!(" ({}: {i})", inst.targets[t].name))
            })
            .unwrap_or_default();
        format!(
            "workload {}: every target with room for it would exceed its power cap{example}",
            w.name
        )
    } else if let Some(g) = inst.classes[c].affinity {
        let suits = names(
            inst.affinity_removed
                .iter()
                .filter(|&&(rc, _)| rc == c)
                .map(|&(_, t)| inst.targets[t].name.as_str()),
        );
        format!(
            "workload {} is in affinity group {}: no target can run every member of the group (it could use {suits}, its partners cannot)",
            w.name, inst.affinity_groups[g].name
        )
    } else {
        format!("workload {}: no target can take one replica", w.name)
    };
    InfeasibleReport {
        workload: Some(w.name.clone()),
        message,
        eliminated: reasons
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(t, reasons)| TargetReasons {
                target: inst.targets[t].name.clone(),
                reasons,
            })
            .collect(),
    }
}

/// After the solver proved infeasibility that the prechecks did not catch: the rules
/// that interact, with the aggregate load.
pub(crate) fn diagnose(inst: &Instance<'_>) -> InfeasibleReport {
    let mut parts = Vec::new();
    let mut need = Resources::default();
    for (c, class) in inst.classes.iter().enumerate() {
        let n = f64::from(class.replicas);
        let r = inst.workload(c).requests;
        need = Resources::new(
            need.cpu + n * r.cpu,
            need.memory + n * r.memory,
            need.gpu + n * r.gpu,
        );
    }
    let free = inst.targets.iter().fold(Resources::default(), |a, t| {
        let f = t.free();
        Resources::new(a.cpu + f.cpu, a.memory + f.memory, a.gpu + f.gpu)
    });
    for r in Resource::ALL {
        if free.get(r) > 0.0 && need.get(r) > 0.0 {
            parts.push(format!(
                "{} of {} free requested",
                amount(r, need.get(r)),
                amount(r, free.get(r))
            ));
        }
    }
    let capped = inst
        .targets
        .iter()
        .filter(|t| t.power_cap_watts.is_some())
        .count();
    if capped > 0 {
        parts.push(format!("power caps on {capped} targets"));
    }
    let spread = inst
        .classes
        .iter()
        .filter(|c| inst.workloads[c.rep()].max_per_target.is_some())
        .count();
    if spread > 0 {
        parts.push(format!("spread limits on {spread} workloads"));
    }
    let exact = inst
        .classes
        .iter()
        .filter(|c| inst.workloads[c.rep()].number_of_targets.is_some())
        .count();
    if exact > 0 {
        parts.push(format!("exact target counts on {exact} workloads"));
    }
    for (kind, groups) in [
        ("anti-affinity", &inst.anti_groups),
        ("affinity", &inst.affinity_groups),
    ] {
        if !groups.is_empty() {
            parts.push(format!(
                "{kind} groups {}",
                names(groups.iter().map(|g| g.name.as_str()))
            ));
        }
    }
    InfeasibleReport {
        workload: None,
        message: format!(
            "no plan satisfies all constraints together (each workload fits alone; capacity is shared): {}",
            parts.join("; ")
        ),
        eliminated: Vec::new(),
    }
}

/// `1.23 kWh` / `456 Wh`.
fn energy(wh: f64) -> String {
    if wh.abs() >= 1000.0 {
        format!("{:.2} kWh", wh / 1000.0)
    } else {
        format!("{wh:.1} Wh")
    }
}

/// `1.23 kg CO2e` / `456 g CO2e`.
fn carbon(g: f64) -> String {
    if g.abs() >= 1000.0 {
        format!("{:.2} kg CO2e", g / 1000.0)
    } else {
        format!("{g:.1} g CO2e")
    }
}

/// A change with its sign: `+12.3`, `−4.5` (U+2212 minus), `0.0` when it rounds to 0.
pub fn signed(v: f64, decimals: usize) -> String {
    let magnitude = format!("{:.*}", decimals, v.abs());
    if magnitude.bytes().all(|b| b == b'0' || b == b'.') {
        magnitude
    } else if v < 0.0 {
        format!("−{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// `magnitude` of a change with the sign of `v` (`+353.9 Wh`, `−1.53 kg CO2e`).
fn signed_units(v: f64, magnitude: fn(f64) -> String) -> String {
    let sign = signed(v, 6);
    match sign.chars().next() {
        Some(c @ ('+' | '−')) => format!("{c}{}", magnitude(v.abs())),
        _ => magnitude(0.0),
    }
}

impl Plan {
    /// Human-readable lines: how the plan was found, its totals, and its change against
    /// the least-allocated reference plan (plan − reference, signed: negative = less).
    pub fn explain(&self) -> Vec<String> {
        let s = &self.stats;
        let status = match &self.status {
            PlanStatus::Optimal => "optimal".to_string(),
            PlanStatus::GapReached => "within the MIP gap".to_string(),
            PlanStatus::TimeLimit => "best found before the time limit".to_string(),
            PlanStatus::Fallback { reason } => format!("greedy fallback ({reason})"),
        };
        let gap = self
            .gap
            .map(|g| format!(", gap {:.2} %", 100.0 * g))
            .unwrap_or_default();
        let t = &self.totals;
        let mut lines = vec![
            format!(
                "plan {status}{gap} in {:.3} s: {} workloads in {} classes on {} of {} targets ({} woken)",
                self.solve_seconds,
                s.workloads,
                s.classes,
                t.targets_used,
                s.targets,
                t.targets_woken
            ),
            format!(
                "totals: {}, {}, latency {:.0} ms summed over replicas, {} replicas moved; objective {:.4} = carbon {:.4} + energy {:.4} + latency {:.4} + migration {:.4}",
                energy(t.units.energy_wh),
                carbon(t.units.carbon_g),
                t.units.latency_ms,
                t.units.migration,
                t.objective,
                t.contributions.carbon,
                t.contributions.energy,
                t.contributions.latency,
                t.contributions.migration
            ),
        ];
        // Savings are reference − plan; a change is plan − reference.
        match (&self.reference, &self.savings) {
            (Some(r), Some(sv)) => lines.push(format!(
                "vs least-allocated spreading ({} targets, {} woken; objective {:.4}), plan − reference, negative = less: energy {} ({} %), carbon {} ({} %), latency {} ms ({} %), replicas moved {}; objective {}",
                r.targets_used,
                r.targets_woken,
                r.objective,
                signed_units(-sv.units.energy_wh, energy),
                signed(-sv.percent.energy_wh, 1),
                signed_units(-sv.units.carbon_g, carbon),
                signed(-sv.percent.carbon_g, 1),
                signed(-sv.units.latency_ms, 0),
                signed(-sv.percent.latency_ms, 1),
                signed(-sv.units.migration, 0),
                signed(-sv.objective, 4)
            )),
            _ => lines.push(format!(
                "no reference plan: {}",
                self.reference_error.as_deref().unwrap_or("unknown")
            )),
        }
        lines
    }
}
