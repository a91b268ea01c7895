//! ε-constraint Pareto fronts: one objective is bounded and swept, the weighted sum of the
//! others is minimised under each bound (e.g. carbon against latency, for reports).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::Objectives;
use crate::model::{Target, Workload};
use crate::power::PowerModel;
use crate::weights::Weights;

use super::classes::Instance;
use super::greedy;
use super::milp::{self, Bounded, LinearModel};
use super::{Plan, PlanError, Solution, SolveOptions, evaluate, explain, finish, reference, solve};

/// An objective of the placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Energy, Wh.
    Energy,
    /// Emissions, gCO2e.
    Carbon,
    /// Latency, ms summed over replicas.
    Latency,
    /// Replicas moved.
    Migration,
}

impl Objective {
    fn bounded(self) -> Bounded {
        match self {
            Objective::Energy => Bounded::Energy,
            Objective::Carbon => Bounded::Carbon,
            Objective::Latency => Bounded::Latency,
            Objective::Migration => Bounded::Migration,
        }
    }
}

/// What to sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParetoOptions {
    /// The objective bounded by ε (the others are minimised with their weights).
    pub bounded: Objective,
    /// Number of ε values from its best to its worst useful value (≥ 2).
    pub points: usize,
}

/// One plan of the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    /// The bound used, in the bounded objective's unit.
    pub epsilon: f64,
    /// The plan's value of the bounded objective, in its unit.
    pub bounded_value: f64,
    /// The plan's weighted normalised sum of the other objectives.
    pub others: f64,
    /// The plan (its totals use the full weights).
    pub plan: Plan,
}

/// Coefficients with only `b`'s component: 1 / spread (or 1 without a spread).
fn only(inst: &Instance<'_>, b: Objective) -> Objectives {
    let unit = |s: f64| if s > 1e-12 { 1.0 / s } else { 1.0 };
    let s = &inst.normalisers.spread;
    let mut c = Objectives::default();
    match b {
        Objective::Energy => c.energy_wh = unit(s.energy_wh),
        Objective::Carbon => c.carbon_g = unit(s.carbon_g),
        Objective::Latency => c.latency_ms = unit(s.latency_ms),
        Objective::Migration => c.migration = unit(s.migration),
    }
    c
}

/// The weighted coefficients with `b`'s component removed.
fn others(inst: &Instance<'_>, b: Objective) -> Objectives {
    let mut c = inst.coef;
    match b {
        Objective::Energy => c.energy_wh = 0.0,
        Objective::Carbon => c.carbon_g = 0.0,
        Objective::Latency => c.latency_ms = 0.0,
        Objective::Migration => c.migration = 0.0,
    }
    c
}

/// Sweeps `sweep.bounded` from its minimum to its value at the others' optimum and
/// returns the non-dominated plans, best bounded value first.
pub fn pareto_front(
    workloads: &[Workload],
    targets: &[Target],
    weights: &Weights,
    at: DateTime<Utc>,
    power: &dyn PowerModel,
    options: &SolveOptions,
    sweep: &ParetoOptions,
) -> Result<Vec<ParetoPoint>, PlanError> {
    let inst = Instance::build(workloads, targets, weights, at, power, options.convex_power)?;
    explain::precheck(&inst)?;
    let refer = reference::reference(&inst);
    let b = sweep.bounded;
    let rest = others(&inst, b);
    let value = |x: &[u32]| b.bounded().of(&evaluate::class_units(&inst, x));
    let greedy = greedy::warm_start(&inst);

    // Ends of the sweep: the bounded objective alone, and the others alone.
    let solve_with = |coef: &Objectives, eps: Option<f64>, start: Result<Vec<u32>, String>| {
        let (model, lay) = milp::build(&inst, coef, eps.map(|e| (b.bounded(), e)));
        solve(&inst, &model, &lay, start, coef, options).map(|s| (s, model))
    };
    let (best, _) = solve_with(&only(&inst, b), None, greedy.clone())?;
    let lo = value(&best.x);
    let (worst, _) = solve_with(&rest, None, greedy)?;
    let hi = value(&worst.x).max(lo);

    let points = sweep.points.max(2);
    let mut found: Vec<(f64, Solution, LinearModel)> = Vec::new();
    let mut start: Result<Vec<u32>, String> = Ok(best.x.clone());
    for i in 0..points {
        let eps = if i + 1 == points {
            hi
        } else {
            lo + (hi - lo) * i as f64 / (points - 1) as f64
        };
        let tol = 1e-9 * eps.abs().max(1.0);
        let (sol, model) = match solve_with(&rest, Some(eps + tol), start.clone()) {
            Ok(r) => r,
            // With a MIP gap the ends are approximate: a bound may be just out of reach.
            Err(PlanError::Infeasible(_)) => continue,
            Err(e) => return Err(e),
        };
        start = Ok(sol.x.clone());
        found.push((eps, sol, model));
        if hi - lo <= tol {
            break;
        }
    }
    let mut front: Vec<ParetoPoint> = Vec::new();
    for (eps, sol, model) in found {
        let bounded_value = value(&sol.x);
        let other = evaluate::class_objective(&inst, &sol.x, &rest);
        let dominated = front
            .iter()
            .any(|p| p.bounded_value <= bounded_value + 1e-9 && p.others <= other + 1e-9);
        if dominated {
            continue;
        }
        front.retain(|p| !(bounded_value <= p.bounded_value + 1e-9 && other <= p.others + 1e-9));
        front.push(ParetoPoint {
            epsilon: eps,
            bounded_value,
            others: other,
            plan: finish(&inst, &model, sol, &refer),
        });
    }
    front.sort_by(|a, b| a.bounded_value.total_cmp(&b.bounded_value));
    Ok(front)
}
