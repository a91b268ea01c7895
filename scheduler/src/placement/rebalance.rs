//! Rebalance: the moves from the current cluster placement to a re-solved plan (migration
//! priced), each with its gain, kept when the gain reaches a threshold and the clusters
//! have room for the moves kept.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use optimizer::cost::{self, Objectives};
use optimizer::power::{self, PowerError, PowerQuery};
use optimizer::{Plan, PowerModel, Resource, Resources, Target, Weights, Workload};

use super::response::{SolverReport, WorkloadPlacement, placements};

/// What cluster-level moves mean: advice, not action.
pub const ADVISORY: &str = "Cluster-level moves are advisory: OCM Placements follow the published AddOnPlacementScores, ecoplace does not move workloads between clusters. Apply a move by changing the workload's Placement (or its scores) yourself.";

/// Tolerance of the capacity checks, relative to capacity.
const TOL: f64 = 1e-9;

/// The answer to `POST /v1/rebalance` (always a dry run at cluster level).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceResponse {
    /// What the moves mean (advisory).
    pub advisory: &'static str,
    /// `dry-run`: nothing was changed.
    pub mode: &'static str,
    /// The time the moves were priced at.
    pub at: DateTime<Utc>,
    /// The weights used.
    pub weights: Weights,
    /// The smallest objective gain a move needed.
    pub min_gain: f64,
    /// How the re-solve went.
    pub solver: SolverReport,
    /// Moves worth making, largest gain first.
    pub moves: Vec<Move>,
    /// Moves of the re-solved plan that are not advised, and why.
    pub skipped: Vec<Skipped>,
    /// Sum of the advised moves' gains.
    pub total_gain: Gain,
    /// The placement after the advised moves, per workload.
    pub placement: Vec<WorkloadPlacement>,
    /// Constraints the placement after the advised moves still breaks (e.g. a current
    /// placement already over an SLO whose move was skipped).
    pub violations: Vec<String>,
}

/// One workload's move: replicas leaving some clusters for others.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    /// Workload name.
    pub workload: String,
    /// Replicas from one cluster to another.
    pub transfers: Vec<Transfer>,
    /// Replicas moved in all.
    pub replicas_moved: u32,
    /// What the move gains.
    pub gain: Gain,
}

/// Replicas moved from one cluster to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Cluster left.
    pub from: String,
    /// Cluster joined.
    pub to: String,
    /// Replicas moved.
    pub replicas: u32,
}

/// What a move gains (positive = better after the move).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gain {
    /// Emissions avoided, gCO2e per hour.
    pub carbon_g_per_hour: f64,
    /// Power saved, watts (Wh per hour).
    pub energy_watts: f64,
    /// Mean user latency saved, ms, summed over the moved replicas.
    pub latency_ms: f64,
    /// Reduction of the weighted normalised objective, the migration cost deducted.
    pub objective: f64,
}

impl Gain {
    fn add(&mut self, g: &Gain) {
        self.carbon_g_per_hour += g.carbon_g_per_hour;
        self.energy_watts += g.energy_watts;
        self.latency_ms += g.latency_ms;
        self.objective += g.objective;
    }
}

/// A move of the plan that is not advised.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The move.
    #[serde(rename = "move")]
    pub mv: Move,
    /// Why it is not advised.
    pub reason: String,
}

/// The moves from each workload's `current` placement to `plan`, priced per replica with
/// the optimizer's terms; those with an objective gain ≥ `min_gain` are advised while the
/// clusters they fill have room (moves are considered largest gain first, repeatedly, so
/// a move waiting for room freed by another is taken once that one is). Fails only when
/// the power model does.
pub fn moves(
    plan: &Plan,
    workloads: &[Workload],
    targets: &[Target],
    power: &dyn PowerModel,
    min_gain: f64,
    at: DateTime<Utc>,
) -> Result<RebalanceResponse, PowerError> {
    let index: HashMap<&str, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let coef = plan.normalisers.coefficients(&plan.weights);
    let empty = BTreeMap::new();
    let mut candidates: Vec<(usize, Move)> = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        let new = plan.assignments.get(&w.name).unwrap_or(&empty);
        if let Some(mv) = one_move(w, new, targets, &index, power, &coef, at)? {
            candidates.push((wi, mv));
        }
    }
    candidates.sort_by(|a, b| b.1.gain.objective.total_cmp(&a.1.gain.objective));
    let mut used: Vec<Resources> = targets.iter().map(|t| t.allocated).collect();
    for w in workloads {
        for (c, &k) in &w.current {
            if let Some(&t) = index.get(c.as_str()) {
                used[t] = plus(&used[t], &w.requests, f64::from(k));
            }
        }
    }
    let mut skipped = Vec::new();
    let mut waiting = Vec::new();
    for (wi, mv) in candidates {
        if mv.gain.objective < min_gain {
            let reason = format!(
                "objective gain {:.4} is below the minimum {min_gain}",
                mv.gain.objective
            );
            skipped.push(Skipped { mv, reason });
        } else {
            waiting.push((wi, mv));
        }
    }
    let mut advised: Vec<(usize, Move)> = Vec::new();
    loop {
        let before = waiting.len();
        let mut still = Vec::new();
        for (wi, mv) in waiting {
            if fits(&mv, &workloads[wi].requests, targets, &index, &used) {
                for tr in &mv.transfers {
                    if let (Some(&f), Some(&t)) =
                        (index.get(tr.from.as_str()), index.get(tr.to.as_str()))
                    {
                        let k = f64::from(tr.replicas);
                        used[f] = plus(&used[f], &workloads[wi].requests, -k);
                        used[t] = plus(&used[t], &workloads[wi].requests, k);
                    }
                }
                advised.push((wi, mv));
            } else {
                still.push((wi, mv));
            }
        }
        waiting = still;
        if waiting.len() == before || waiting.is_empty() {
            break;
        }
    }
    for (_, mv) in waiting {
        skipped.push(Skipped {
            mv,
            reason:
                "its destination clusters lack room unless moves below the threshold are made too"
                    .into(),
        });
    }
    let mut after: BTreeMap<String, BTreeMap<String, u32>> = workloads
        .iter()
        .map(|w| (w.name.clone(), w.current.clone()))
        .collect();
    let mut total_gain = Gain::default();
    for (wi, mv) in &advised {
        total_gain.add(&mv.gain);
        if let Some(p) = plan.assignments.get(&workloads[*wi].name) {
            after.insert(workloads[*wi].name.clone(), p.clone());
        }
    }
    let violations = optimizer::validate_assignments(&after, workloads, targets, power)
        .iter()
        .map(ToString::to_string)
        .collect();
    advised.sort_by(|a, b| b.1.gain.objective.total_cmp(&a.1.gain.objective));
    Ok(RebalanceResponse {
        advisory: ADVISORY,
        mode: "dry-run",
        at,
        weights: plan.weights,
        min_gain,
        solver: SolverReport::of(plan),
        moves: advised.into_iter().map(|(_, mv)| mv).collect(),
        skipped,
        total_gain,
        placement: placements(workloads.iter().map(|w| w.name.as_str()), &after),
        violations,
    })
}

/// `a + k·b`, component-wise.
fn plus(a: &Resources, b: &Resources, k: f64) -> Resources {
    Resources::new(
        a.cpu + k * b.cpu,
        a.memory + k * b.memory,
        a.gpu + k * b.gpu,
    )
}

/// Whether every cluster `mv` adds replicas to has room for them.
fn fits(
    mv: &Move,
    req: &Resources,
    targets: &[Target],
    index: &HashMap<&str, usize>,
    used: &[Resources],
) -> bool {
    let mut added: HashMap<usize, f64> = HashMap::new();
    for tr in &mv.transfers {
        if let Some(&t) = index.get(tr.to.as_str()) {
            *added.entry(t).or_default() += f64::from(tr.replicas);
        }
        if let Some(&f) = index.get(tr.from.as_str()) {
            *added.entry(f).or_default() -= f64::from(tr.replicas);
        }
    }
    added.into_iter().filter(|&(_, k)| k > 0.0).all(|(t, k)| {
        let after = plus(&used[t], req, k);
        Resource::ALL.into_iter().all(|r| {
            req.get(r) <= 0.0 || after.get(r) <= targets[t].capacity.get(r) * (1.0 + TOL) + TOL
        })
    })
}

/// The move of `w` from its current placement to `new`, or `None` when nothing changes.
fn one_move(
    w: &Workload,
    new: &BTreeMap<String, u32>,
    targets: &[Target],
    index: &HashMap<&str, usize>,
    power: &dyn PowerModel,
    coef: &Objectives,
    at: DateTime<Utc>,
) -> Result<Option<Move>, PowerError> {
    let count = |m: &BTreeMap<String, u32>, c: &str| m.get(c).copied().unwrap_or(0);
    let mut out: Vec<(String, u32)> = Vec::new();
    let mut into: Vec<(String, u32)> = Vec::new();
    let names: std::collections::BTreeSet<&String> = w.current.keys().chain(new.keys()).collect();
    for c in names {
        let (before, after) = (count(&w.current, c), count(new, c));
        if before > after {
            out.push((c.clone(), before - after));
        } else if after > before {
            into.push((c.clone(), after - before));
        }
    }
    if out.is_empty() && into.is_empty() {
        return Ok(None);
    }
    let mut transfers = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < out.len() && j < into.len() {
        let k = out[i].1.min(into[j].1);
        transfers.push(Transfer {
            from: out[i].0.clone(),
            to: into[j].0.clone(),
            replicas: k,
        });
        out[i].1 -= k;
        into[j].1 -= k;
        if out[i].1 == 0 {
            i += 1;
        }
        if into[j].1 == 0 {
            j += 1;
        }
    }
    let hours = w.expected_duration_s.max(1.0) / 3600.0;
    let latency = cost::NeutralLatency::of(w, targets);
    let terms = |name: &str| -> Result<Objectives, PowerError> {
        let Some(t) = index.get(name).map(|&i| &targets[i]) else {
            return Ok(Objectives::default());
        };
        let q = [PowerQuery::placing(t, w.requests.cpu)];
        let mut watts = [0.0];
        power::predict(power, &q, &mut watts)?;
        Ok(cost::replica_cost(w, t, watts[0], at, &latency).terms)
    };
    let mut gain = Gain::default();
    for tr in &transfers {
        let (from, to) = (terms(&tr.from)?, terms(&tr.to)?);
        let k = f64::from(tr.replicas);
        let d = from.add(&to.scale(-1.0)).scale(k);
        gain.add(&Gain {
            carbon_g_per_hour: d.carbon_g / hours,
            energy_watts: d.energy_wh / hours,
            latency_ms: d.latency_ms,
            objective: coef.carbon_g * d.carbon_g
                + coef.energy_wh * d.energy_wh
                + coef.latency_ms * d.latency_ms
                + coef.migration * d.migration,
        });
    }
    Ok(Some(Move {
        workload: w.name.clone(),
        replicas_moved: transfers.iter().map(|t| t.replicas).sum(),
        transfers,
        gain,
    }))
}
