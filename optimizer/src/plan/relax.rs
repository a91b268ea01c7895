//! LP-guided starts: the placement model solved with integrality dropped gives a proved
//! lower bound and near-integral replica counts; floored and completed by the greedy
//! ([`super::greedy::repair`], [`super::moves::improve`]) they make a feasible plan that
//! is often within the MIP gap of that bound, so no branch and bound is needed, and
//! otherwise a strong start for a small neighbourhood sub-MIP and then the full MILP.

use std::time::Instant;

use crate::cost::Objectives;

use super::backend::{self, Change, Failure, Outcome};
use super::classes::Instance;
use super::greedy;
use super::milp::{self, Layout, LinearModel};
use super::moves;
use super::{Backend, PlanStatus, Solution, SolveOptions};

/// A start for the MILP: replicas per pair and the model's column values.
pub(crate) type Start = Result<(Vec<u32>, Vec<f64>), String>;

/// The LP relaxation is infeasible, so the MILP is too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Infeasible;

/// What the LP stage decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// A plan within the MIP gap of the LP bound: no MILP needed.
    Done(Solution),
    /// The best start found for the MILP, and the seconds spent finding it.
    Start {
        /// The start (or why none is feasible).
        start: Start,
        /// Wall time spent, seconds.
        seconds: f64,
    },
}

/// The LP stage: bound, repaired LP plan, then RENS; returns a plan within the MIP gap
/// of the LP bound, or the best start among these and `greedy` for the full MILP.
pub(crate) fn run(
    inst: &Instance<'_>,
    model: &LinearModel,
    lay: &Layout,
    greedy: Start,
    coef: &Objectives,
    options: &SolveOptions,
) -> Result<Step, Infeasible> {
    let began = Instant::now();
    let Some(guide) = guide(inst, model, lay, coef, options)? else {
        return Ok(Step::Start {
            start: greedy,
            seconds: began.elapsed().as_secs_f64(),
        });
    };
    let value = |v: &[f64]| model.objective(v) - model.offset;
    let done = |x: &[u32], v: &[f64]| -> Option<Step> {
        let gap = gap(value(v), guide.bound);
        let close = gap <= options.mip_gap || value(v) - guide.bound <= options.absolute_gap;
        close.then(|| {
            Step::Done(Solution {
                x: x.to_vec(),
                status: if gap <= 1e-9 {
                    PlanStatus::Optimal
                } else {
                    PlanStatus::GapReached
                },
                gap: Some(gap),
                seconds: began.elapsed().as_secs_f64(),
            })
        })
    };
    let mut best = better(guide.start, greedy, &value);
    if let Ok((x, v)) = &best
        && let Some(step) = done(x, v)
    {
        return Ok(step);
    }
    let left = SolveOptions {
        time_limit_s: options.time_limit_s - began.elapsed().as_secs_f64(),
        ..*options
    };
    if left.time_limit_s > 0.0 {
        let warm = best.as_ref().ok().map(|b| b.1.as_slice());
        // Good enough: a plan within the gap of the LP bound.
        let target = (options.mip_gap < 1.0 && guide.bound > 0.0)
            .then(|| guide.bound / (1.0 - options.mip_gap.max(0.0)));
        if let Some(values) = neighbourhood(model, &guide.lp, warm, &left, target) {
            let x = milp::read_x(lay, &values);
            let v = milp::start_values(inst, model, lay, &x);
            if model.is_feasible(&v, 1e-6) {
                if let Some(step) = done(&x, &v) {
                    return Ok(step);
                }
                best = better(Ok((x, v)), best, &value);
            }
        }
    }
    Ok(Step::Start {
        start: best,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// The start with the lower model objective (`a` on ties), or whichever exists.
fn better(a: Start, b: Start, value: &dyn Fn(&[f64]) -> f64) -> Start {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(if value(&b.1) < value(&a.1) { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), b) => b,
    }
}

/// What the LP relaxation gave.
#[derive(Debug, Clone)]
pub(crate) struct Guide {
    /// Lower bound on the model objective (constant offset excluded), from the LP relaxation.
    pub bound: f64,
    /// The floored guiding LP solution completed into a feasible plan (replicas per pair),
    /// with its column values; or why none was found.
    pub start: Start,
    /// Column values of the guiding LP solution: the relaxation re-solved with every
    /// target it wakes fully woken (integral wake columns).
    pub lp: Vec<f64>,
}

/// Solves the LP relaxation of `model` (the bound), re-solves it from that basis with the
/// wake columns rounded up, repairs the floored replica counts of that solution (moving
/// other replicas to make room where needed) and improves the result by single-replica
/// moves; `Ok(None)` when the relaxation gave nothing usable (greedy backend, time limit,
/// solver failure).
pub(crate) fn guide(
    inst: &Instance<'_>,
    model: &LinearModel,
    lay: &Layout,
    coef: &Objectives,
    options: &SolveOptions,
) -> Result<Option<Guide>, Infeasible> {
    if options.backend == Backend::Greedy || options.time_limit_s <= 0.0 {
        return Ok(None);
    }
    let mut relaxed = model.clone();
    for v in &mut relaxed.vars {
        v.integer = false;
    }
    // The relaxation pays a fraction of the idle power of a target it half uses; with
    // those targets woken (more capacity, so still feasible) the LP is near integral. The
    // re-solve starts from the relaxation's basis.
    let mut wake = |values: &[f64]| -> Vec<Change> {
        let mut changes = Vec::new();
        let mut fractional = false;
        for &y in lay.y.iter().flatten() {
            let value = values.get(y).copied().unwrap_or(0.0);
            let up = if value > 1e-6 { 1.0 } else { 0.0 };
            fractional |= (value - up).abs() > 1e-6;
            changes.push(Change {
                column: y,
                lo: up,
                hi: up,
            });
        }
        if fractional { changes } else { Vec::new() }
    };
    let (first, second) = backend::solve_twice(&relaxed, options, &mut wake);
    let solved = match first {
        // Only an optimal LP solution is a bound.
        Ok(s) if s.outcome == Outcome::Optimal => s,
        Ok(_) | Err(Failure::NoSolution(_)) => return Ok(None),
        Err(Failure::Infeasible) => return Err(Infeasible),
    };
    let bound = relaxed.objective(&solved.values) - relaxed.offset;
    let lp = match second {
        Some(Ok(s)) if s.values.len() == solved.values.len() => s.values,
        _ => solved.values,
    };
    let seed: Vec<u32> = lay
        .x
        .iter()
        .map(|&col| {
            let v = lp.get(col).copied().unwrap_or(0.0);
            // Counts are small integers: the cast saturates and NaN becomes 0.
            (v + 1e-6).floor().max(0.0) as u32
        })
        .collect();
    let start = greedy::repair(inst, &seed, coef).and_then(|x| {
        let x = moves::improve(inst, x, coef);
        let values = milp::start_values(inst, model, lay, &x);
        if model.is_feasible(&values, 1e-6) {
            Ok((x, values))
        } else {
            Err("the LP-guided plan breaks a model row".to_string())
        }
    });
    Ok(Some(Guide { bound, start, lp }))
}

/// RENS: the MILP restricted to the integer neighbourhood of the LP optimum `lp` (every
/// integer column within ±1 of its LP value, zero columns fixed, widened to contain
/// `start`), handed to the solver without its fixed columns and warm-started with
/// `start`, solved within `options`' time limit to a tenth of its gap or until a plan
/// reaches `target`; the plan's column values, if any.
pub(crate) fn neighbourhood(
    model: &LinearModel,
    lp: &[f64],
    start: Option<&[f64]>,
    options: &SolveOptions,
    target: Option<f64>,
) -> Option<Vec<f64>> {
    let mut sub = model.clone();
    for (v, &value) in sub.vars.iter_mut().zip(lp) {
        if v.integer {
            if value <= 1e-6 {
                v.hi = v.lo.max(0.0);
            } else {
                v.lo = v.lo.max((value + 1e-6).floor() - 1.0);
                v.hi = v.hi.min((value - 1e-6).ceil() + 1.0);
            }
        }
    }
    // Widened to contain the start, so that HiGHS can use it.
    if let Some(start) = start.filter(|s| s.len() == sub.vars.len()) {
        for ((v, &value), orig) in sub.vars.iter_mut().zip(start).zip(&model.vars) {
            v.lo = v.lo.min(value).max(orig.lo);
            v.hi = v.hi.max(value).min(orig.hi);
        }
    }
    let start = start.filter(|s| sub.is_feasible(s, 1e-6));
    // Most columns are fixed at zero: hand HiGHS only the free ones.
    let (reduced, kept) = sub.without_fixed()?;
    let start: Option<Vec<f64>> = start.map(|s| kept.iter().map(|&j| s[j]).collect());
    let fixed = reduced.offset - model.offset;
    let opts = SolveOptions {
        mip_gap: options.mip_gap * 0.1,
        ..*options
    };
    backend::solve(&reduced, start.as_deref(), &opts, target.map(|t| t - fixed))
        .0
        .ok()
        .map(|s| model.expand(&kept, &s.values))
        .filter(|v| model.is_feasible(v, 1e-6))
}

/// Relative gap of a plan with model objective `value` (offset excluded) over `bound`, as
/// HiGHS defines it: `(value − bound) / |value|`, zero when the plan meets the bound.
pub(crate) fn gap(value: f64, bound: f64) -> f64 {
    let diff = value - bound;
    if diff <= 0.0 {
        0.0
    } else if value.abs() > 0.0 {
        diff / value.abs()
    } else {
        f64::INFINITY
    }
}
