//! Batch placement: the multi-objective MILP (good_lp; HiGHS by default, microlp without
//! a C++ toolchain), its greedy warm start and fallback, a least-allocated reference plan
//! for the savings, ε-constraint Pareto fronts, and infeasibility explanations.
//!
//! The objective terms and their normalisation are those of [`crate::cost`], shared with
//! [`crate::score::score_targets`], so plans and per-pod scores agree.

mod backend;
mod classes;
mod evaluate;
mod explain;
mod greedy;
mod milp;
mod moves;
mod pareto;
mod reference;
mod relax;
mod stacking;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::{Contributions, Normalisers, Objectives};
use crate::model::{Target, Workload};
use crate::power::{PowerError, PowerModel};
use crate::weights::Weights;

pub use explain::{InfeasibleReport, TargetReasons, signed};
pub use pareto::{Objective, ParetoOptions, ParetoPoint, pareto_front};

use backend::{Failure, Outcome};
use classes::Instance;
use milp::{Layout, LinearModel};

/// Which MILP solver runs (or none: the greedy plan only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// HiGHS (C++), the default.
    #[cfg(feature = "highs")]
    Highs,
    /// microlp (pure Rust), for small models or builds without a C++ toolchain.
    #[cfg(feature = "microlp")]
    Microlp,
    /// No MILP: the greedy plan, marked as a fallback.
    Greedy,
}

impl Default for Backend {
    #[cfg(feature = "highs")]
    fn default() -> Self {
        Backend::Highs
    }
    #[cfg(all(not(feature = "highs"), feature = "microlp"))]
    fn default() -> Self {
        Backend::Microlp
    }
    #[cfg(not(any(feature = "highs", feature = "microlp")))]
    fn default() -> Self {
        Backend::Greedy
    }
}

/// Limits of one solve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolveOptions {
    /// Wall-time limit of each solver run, seconds.
    pub time_limit_s: f64,
    /// Relative MIP gap at which the solver stops, (plan − bound) / |plan| (0.01 = 1 %).
    pub mip_gap: f64,
    /// Absolute MIP gap at which the solver stops (objective units).
    pub absolute_gap: f64,
    /// Solver backend.
    pub backend: Backend,
    /// Whether to give the solver a starting plan (LP-guided, else greedy).
    pub warm_start: bool,
    /// Bounded candidates: each workload considers the targets it runs on now and the
    /// this many where one replica costs least; the model then grows with workloads, not
    /// workloads × targets. `None`: every target. A bounded model that has no plan is
    /// solved again over every target.
    pub candidates: Option<usize>,
    /// Price what replicas stacked on a target draw on its convex power curve (see
    /// `plan/stacking.rs`), not each at its one-replica price. Exact on what is paid, but
    /// off by default: HiGHS then no longer reaches a 1 % plan of 1 000 workloads × 50
    /// clusters within 5 s (docs/benchmarks.md).
    pub convex_power: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            time_limit_s: 5.0,
            mip_gap: 0.01,
            absolute_gap: 1e-6,
            backend: Backend::default(),
            warm_start: true,
            candidates: None,
            convex_power: false,
        }
    }
}

impl SolveOptions {
    /// Exact solves (zero gaps), for tests and small instances.
    pub fn exact() -> Self {
        Self {
            mip_gap: 0.0,
            absolute_gap: 0.0,
            ..Self::default()
        }
    }
}

/// How a plan was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanStatus {
    /// The solver proved the plan optimal.
    Optimal,
    /// The solver stopped within the requested MIP gap.
    GapReached,
    /// The time limit stopped the solver; its best plan beats the greedy one.
    TimeLimit,
    /// The solver timed out or failed; this is the feasible greedy plan.
    Fallback {
        /// Why the solver's answer was not used.
        reason: String,
    },
}

/// A plan's objective values: units, weighted normalised contributions and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Energy (Wh), carbon (g), latency (ms summed over replicas), migration (replicas).
    pub units: Objectives,
    /// Weighted normalised contributions (the MILP objective's terms).
    pub contributions: Contributions,
    /// The weighted normalised objective (sum of the contributions).
    pub objective: f64,
    /// Targets with at least one replica.
    pub targets_used: usize,
    /// Targets that were off and must be woken.
    pub targets_woken: usize,
}

/// What a plan saves compared with the reference plan (positive = better).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Savings {
    /// Reference minus plan, per objective, in units.
    pub units: Objectives,
    /// Reference minus plan, per weighted normalised contribution.
    pub contributions: Contributions,
    /// Reference minus plan objective.
    pub objective: f64,
    /// Saving in percent of the reference, per objective (0 where the reference is 0).
    pub percent: Objectives,
}

/// Size of the model that was solved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Workloads given.
    pub workloads: usize,
    /// Classes after merging identical workloads.
    pub classes: usize,
    /// Targets given.
    pub targets: usize,
    /// Feasible (class, target) pairs.
    pub pairs: usize,
    /// MILP columns.
    pub variables: usize,
    /// Integer (incl. binary) columns.
    pub integer_variables: usize,
    /// MILP rows.
    pub constraints: usize,
}

/// A placement decision with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Workload name → target name → replicas (every workload present, maybe empty).
    pub assignments: BTreeMap<String, BTreeMap<String, u32>>,
    /// How the plan was obtained.
    pub status: PlanStatus,
    /// Relative MIP gap the solver reported (`None` when it reports none, e.g. fallback).
    pub gap: Option<f64>,
    /// Solver wall time, seconds.
    pub solve_seconds: f64,
    /// This plan's objective totals.
    pub totals: Totals,
    /// Totals of the least-allocated reference plan, when one exists.
    pub reference: Option<Totals>,
    /// Why there is no reference plan, if there is none.
    pub reference_error: Option<String>,
    /// Reference minus this plan.
    pub savings: Option<Savings>,
    /// The scales used to normalise the objectives.
    pub normalisers: Normalisers,
    /// The weights used.
    pub weights: Weights,
    /// Planning horizon (longest expected duration), seconds: idle power of woken targets
    /// counts over it.
    pub horizon_s: f64,
    /// Model size.
    pub stats: ModelStats,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The power model failed.
    #[error(transparent)]
    Power(#[from] PowerError),
    /// The input is malformed (duplicate names, non-finite numbers, bad weights).
    #[error("invalid placement input: {0}")]
    Invalid(String),
    /// No placement satisfies the constraints; says which.
    #[error("{0}")]
    Infeasible(InfeasibleReport),
    /// The solver failed and the greedy plan failed too.
    #[error("no plan: {solver}; greedy: {greedy}")]
    Solver {
        /// What the solver said.
        solver: String,
        /// Why the greedy plan failed.
        greedy: String,
    },
}

/// Places `workloads` on `targets`, minimising the weighted normalised energy, carbon,
/// latency and migration, under every hard constraint.
pub fn plan(
    workloads: &[Workload],
    targets: &[Target],
    weights: &Weights,
    at: DateTime<Utc>,
    power: &dyn PowerModel,
    options: &SolveOptions,
) -> Result<Plan, PlanError> {
    let inst = Instance::build(workloads, targets, weights, at, power, options.convex_power)?;
    explain::precheck(&inst)?;
    let reference = reference::reference(&inst);
    if let Some(bounded) = options.candidates.and_then(|k| inst.bounded(k))
        && explain::precheck(&bounded).is_ok()
    {
        let (model, lay) = milp::build(&bounded, &bounded.coef, None);
        let greedy = greedy::warm_start(&bounded);
        if let Ok(solution) = solve(&bounded, &model, &lay, greedy, &bounded.coef, options) {
            return Ok(finish(&bounded, &model, solution, &reference));
        }
    }
    let (model, lay) = milp::build(&inst, &inst.coef, None);
    let greedy = greedy::warm_start(&inst);
    let solution = solve(&inst, &model, &lay, greedy, &inst.coef, options)?;
    Ok(finish(&inst, &model, solution, &reference))
}

/// The class-level result of one solve.
#[derive(Debug, Clone)]
pub(crate) struct Solution {
    x: Vec<u32>,
    status: PlanStatus,
    gap: Option<f64>,
    seconds: f64,
}

/// Runs the solver on `model`. First the LP relaxation: its bound and its repaired
/// floored solution; when that plan is within the MIP gap of the bound it is the answer.
/// Otherwise the MILP runs, warm-started with the better of that plan and `start`, and
/// falls back to it when the solver times out or fails.
fn solve(
    inst: &Instance<'_>,
    model: &LinearModel,
    lay: &Layout,
    start: Result<Vec<u32>, String>,
    coef: &Objectives,
    options: &SolveOptions,
) -> Result<Solution, PlanError> {
    let start = start.and_then(|x| {
        let values = milp::start_values(inst, model, lay, &x);
        if model.is_feasible(&values, 1e-6) {
            Ok((x, values))
        } else {
            Err("the greedy plan breaks a model row".to_string())
        }
    });
    let (start, lp_seconds) = match relax::run(inst, model, lay, start, coef, options) {
        Ok(relax::Step::Done(solution)) => return Ok(solution),
        Ok(relax::Step::Start { start, seconds }) => (start, seconds),
        Err(relax::Infeasible) => return Err(PlanError::Infeasible(explain::diagnose(inst))),
    };
    let warm = options
        .warm_start
        .then(|| start.as_ref().ok().map(|s| s.1.as_slice()))
        .flatten();
    let remaining = SolveOptions {
        time_limit_s: (options.time_limit_s - lp_seconds).max(0.0),
        ..*options
    };
    let (result, mip_seconds) = backend::solve(model, warm, &remaining, None);
    let seconds = lp_seconds + mip_seconds;
    let fallback = |reason: String, start: Result<(Vec<u32>, Vec<f64>), String>| match start {
        Ok((x, _)) => Ok(Solution {
            x,
            status: PlanStatus::Fallback { reason },
            gap: None,
            seconds,
        }),
        Err(greedy) => Err(PlanError::Solver {
            solver: reason,
            greedy,
        }),
    };
    match result {
        Ok(solved) => {
            let x = milp::read_x(lay, &solved.values);
            let values = milp::start_values(inst, model, lay, &x);
            debug_assert!(
                (model.objective(&values) - evaluate::class_objective(inst, &x, coef)).abs()
                    <= 1e-6 * model.objective(&values).abs().max(1.0),
                "model and plan objectives disagree"
            );
            if !model.is_feasible(&values, 1e-6) {
                return fallback(
                    "the solver's rounded solution breaks a constraint".into(),
                    start,
                );
            }
            let status = match solved.outcome {
                Outcome::Optimal => PlanStatus::Optimal,
                Outcome::GapReached => PlanStatus::GapReached,
                Outcome::TimeLimit => PlanStatus::TimeLimit,
            };
            if let (PlanStatus::TimeLimit, Ok((gx, _))) = (&status, &start) {
                let mine = evaluate::class_objective(inst, &x, coef);
                if evaluate::class_objective(inst, gx, coef) <= mine + 1e-12 {
                    let reason = format!(
                        "time limit {} s reached without a plan better than the starting one",
                        options.time_limit_s
                    );
                    return fallback(reason, start);
                }
            }
            Ok(Solution {
                x,
                status,
                gap: solved.gap,
                seconds,
            })
        }
        Err(Failure::Infeasible) => Err(PlanError::Infeasible(explain::diagnose(inst))),
        Err(Failure::NoSolution(reason)) => fallback(reason, start),
    }
}

/// Builds the public plan from a class-level solution.
fn finish(
    inst: &Instance<'_>,
    model: &LinearModel,
    solution: Solution,
    reference: &Result<Totals, String>,
) -> Plan {
    let assignments = evaluate::disaggregate(inst, &solution.x);
    let totals = evaluate::totals(inst, &solution.x, &assignments);
    let (reference, reference_error) = match reference {
        Ok(r) => (Some(*r), None),
        Err(e) => (None, Some(e.clone())),
    };
    Plan {
        assignments,
        status: solution.status,
        gap: solution.gap,
        solve_seconds: solution.seconds,
        savings: reference.map(|r| reference::savings(&totals, &r)),
        totals,
        reference,
        reference_error,
        normalisers: inst.normalisers,
        weights: inst.weights,
        horizon_s: inst.horizon.num_milliseconds() as f64 / 1000.0,
        stats: ModelStats {
            workloads: inst.workloads.len(),
            classes: inst.classes.len(),
            targets: inst.targets.len(),
            pairs: inst.pairs.len(),
            variables: model.vars.len(),
            integer_variables: model.integers(),
            constraints: model.rows.len(),
        },
    }
}
