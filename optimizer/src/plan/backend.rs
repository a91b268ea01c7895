//! Solver backends behind good_lp: HiGHS (default feature `highs`) and microlp (feature
//! `microlp`). Every solve has a time limit and a relative MIP gap and is warm-started
//! with a feasible plan when one is known; the incumbent then also acts as a cutoff.

use std::time::Instant;

use super::milp::LinearModel;
#[cfg(any(feature = "highs", feature = "microlp"))]
use super::milp::Sense;
use super::{Backend, SolveOptions};

/// How a solve ended with a solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Proven optimal (gap ≈ 0).
    Optimal,
    /// Stopped within the requested gap.
    GapReached,
    /// Stopped by the time limit with a feasible incumbent.
    TimeLimit,
}

/// A solution with its status.
#[derive(Debug, Clone)]
pub(crate) struct Solved {
    /// Column values.
    pub values: Vec<f64>,
    /// How the solve ended.
    pub outcome: Outcome,
    /// Relative gap reported by the solver, if it reports one.
    pub gap: Option<f64>,
}

/// Why a solve produced no solution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Proven infeasible.
    Infeasible,
    /// Stopped (time limit) or failed without any solution; the reason.
    NoSolution(String),
}

/// Solves `model` with the backend chosen in `opts`; returns the solution or why none.
/// With `target`, HiGHS stops at the first plan whose objective (offset excluded) is at
/// most that.
pub(crate) fn solve(
    model: &LinearModel,
    start: Option<&[f64]>,
    opts: &SolveOptions,
    target: Option<f64>,
) -> (Result<Solved, Failure>, f64) {
    let began = Instant::now();
    if model.vars.is_empty() {
        let solved = Solved {
            values: Vec::new(),
            outcome: Outcome::Optimal,
            gap: Some(0.0),
        };
        return (Ok(solved), 0.0);
    }
    let result = match opts.backend {
        #[cfg(feature = "highs")]
        Backend::Highs => highs::solve(model, start, opts, target),
        #[cfg(feature = "microlp")]
        Backend::Microlp => micro::solve(model, start, opts),
        Backend::Greedy => {
            let _ = (start, target);
            Err(Failure::NoSolution(
                "the MILP is disabled (greedy backend)".into(),
            ))
        }
    };
    (result, began.elapsed().as_secs_f64())
}

/// New bounds of one column for a re-solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    /// Column index.
    pub column: usize,
    /// New lower bound.
    pub lo: f64,
    /// New upper bound (at least `lo`).
    pub hi: f64,
}

/// Solves the LP `model` (integrality flags must be off), then re-solves it after the
/// bound changes `change` derives from the first solution (none: no re-solve). With HiGHS
/// the re-solve starts from the first optimal basis; `opts.time_limit_s` covers both.
pub(crate) fn solve_twice(
    model: &LinearModel,
    opts: &SolveOptions,
    change: &mut dyn FnMut(&[f64]) -> Vec<Change>,
) -> (Result<Solved, Failure>, Option<Result<Solved, Failure>>) {
    #[cfg(feature = "highs")]
    if opts.backend == Backend::Highs && !model.vars.is_empty() {
        return highs::solve_twice(model, opts, change);
    }
    let began = Instant::now();
    let first = match solve(model, None, opts, None).0 {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let changes = change(&first.values);
    if changes.is_empty() {
        return (Ok(first), None);
    }
    let mut again = model.clone();
    for c in changes {
        if let Some(v) = again.vars.get_mut(c.column)
            && c.lo <= c.hi
        {
            v.lo = c.lo;
            v.hi = c.hi;
        }
    }
    let left = SolveOptions {
        time_limit_s: opts.time_limit_s - began.elapsed().as_secs_f64(),
        ..*opts
    };
    let second = solve(&again, None, &left, None).0;
    (Ok(first), Some(second))
}

/// The model as good_lp variables, objective and constraints.
#[cfg(any(feature = "highs", feature = "microlp"))]
fn to_good_lp(
    model: &LinearModel,
) -> (
    good_lp::ProblemVariables,
    Vec<good_lp::Variable>,
    good_lp::Expression,
    Vec<good_lp::Constraint>,
) {
    use good_lp::{Expression, ProblemVariables, variable};
    let mut pv = ProblemVariables::new();
    let cols: Vec<good_lp::Variable> = model
        .vars
        .iter()
        .map(|v| {
            let def = variable().min(v.lo).max(v.hi);
            pv.add(if v.integer { def.integer() } else { def })
        })
        .collect();
    let mut objective = Expression::with_capacity(cols.len());
    for (v, &col) in model.vars.iter().zip(&cols) {
        if v.cost != 0.0 {
            objective.add_mul(v.cost, col);
        }
    }
    let rows = model
        .rows
        .iter()
        .map(|r| {
            let mut e = Expression::with_capacity(r.coefs.len());
            for &(j, a) in &r.coefs {
                e.add_mul(a, cols[j]);
            }
            match r.sense {
                Sense::Le => e.leq(r.rhs),
                Sense::Ge => e.geq(r.rhs),
                Sense::Eq => e.eq(r.rhs),
            }
        })
        .collect();
    (pv, cols, objective, rows)
}

#[cfg(feature = "highs")]
mod highs {
    use good_lp::SolverModel;

    use super::{Change, Failure, LinearModel, Outcome, SolveOptions, Solved, to_good_lp};

    /// Builds the HiGHS model of `model` through good_lp and sets the limits of `opts`.
    macro_rules! highs_model {
        ($model:expr, $opts:expr, $target:expr, $error:expr) => {{
            let (pv, _cols, objective, rows) = to_good_lp($model);
            let mut problem = pv.minimise(objective).using(good_lp::highs);
            for r in rows {
                problem.add_constraint(r);
            }
            let mut inner = problem
                .try_into_inner()
                .map_err(|e| $error(e.to_string()))?;
            if std::env::var_os("ECOPLACE_HIGHS_LOG").is_some() {
                let _ = inner.try_set_option("output_flag", true);
                let _ = inner.try_set_option("log_to_console", true);
            }
            let options: [(&str, f64); 4] = [
                ("time_limit", $opts.time_limit_s.max(0.0)),
                ("mip_rel_gap", $opts.mip_gap.max(0.0)),
                ("mip_abs_gap", $opts.absolute_gap.max(0.0)),
                ("objective_target", $target.unwrap_or(f64::NEG_INFINITY)),
            ];
            for (k, v) in options {
                inner
                    .try_set_option(k, v)
                    .map_err(|_| $error(format!("cannot set option {k} = {v}")))?;
            }
            inner
        }};
    }

    /// Reads the outcome of a HiGHS run (`$solved`: a solved model).
    macro_rules! read_solved {
        ($solved:expr, $opts:expr, $error:expr) => {{
            let solved = &$solved;
            let status = format!("{:?}", solved.status());
            let has_solution = format!("{:?}", solved.primal_solution_status()) == "Feasible";
            let gap = solved.mip_gap();
            let gap = if gap.is_finite() { gap.max(0.0) } else { 0.0 };
            let outcome = match status.as_str() {
                "Optimal" if gap <= 1e-9 => Ok(Outcome::Optimal),
                "Optimal" => Ok(Outcome::GapReached),
                "Infeasible" | "UnboundedOrInfeasible" => Err(Failure::Infeasible),
                _ if has_solution => Ok(Outcome::TimeLimit),
                other => Err(Failure::NoSolution(format!(
                    "HiGHS stopped ({other}) without a feasible solution (time limit {} s)",
                    $opts.time_limit_s
                ))),
            };
            match outcome {
                Ok(_) if !has_solution => {
                    Err($error(format!("status {status} but no primal solution")))
                }
                Ok(outcome) => Ok(Solved {
                    values: solved.get_solution().columns().to_vec(),
                    outcome,
                    gap: Some(gap),
                }),
                Err(e) => Err(e),
            }
        }};
    }

    /// `value`, typed like `_like` (names a highs crate type good_lp does not re-export).
    fn same_type<T>(_like: &T, value: T) -> T {
        value
    }

    fn error(what: String) -> Failure {
        Failure::NoSolution(format!("HiGHS: {what}"))
    }

    /// HiGHS through good_lp's model, driven directly so that the achieved gap is read.
    pub(super) fn solve(
        model: &LinearModel,
        start: Option<&[f64]>,
        opts: &SolveOptions,
        target: Option<f64>,
    ) -> Result<Solved, Failure> {
        let mut inner = highs_model!(model, opts, target, error);
        if let Some(start) = start {
            inner
                .try_set_solution(Some(start), None, None, None)
                .map_err(|e| error(format!("warm start rejected: {e:?}")))?;
        }
        let solved = inner
            .try_solve()
            .map_err(|e| error(format!("solve failed: {e:?}")))?;
        read_solved!(solved, opts, error)
    }

    /// The LP `model`, then the same HiGHS instance re-solved after the bound changes
    /// `change` derives from the first solution: the re-solve starts from the first optimal
    /// basis (no presolve), usually a few hundred dual simplex iterations. HiGHS counts
    /// `opts.time_limit_s` over both runs.
    pub(super) fn solve_twice(
        model: &LinearModel,
        opts: &SolveOptions,
        change: &mut dyn FnMut(&[f64]) -> Vec<Change>,
    ) -> (Result<Solved, Failure>, Option<Result<Solved, Failure>>) {
        let mut run = || -> Result<(Solved, Option<Result<Solved, Failure>>), Failure> {
            let inner = highs_model!(model, opts, None::<f64>, error);
            let solved = inner
                .try_solve()
                .map_err(|e| error(format!("solve failed: {e:?}")))?;
            let first = read_solved!(solved, opts, error)?;
            let changes: Vec<Change> = change(&first.values)
                .into_iter()
                .filter(|c| c.column < model.vars.len() && c.lo <= c.hi)
                .collect();
            let Some(last) = changes.iter().map(|c| c.column).max() else {
                return Ok((first, None));
            };
            // Column handles of the highs crate can only be made by adding columns (good_lp
            // keeps the model's own private): add as many to an empty scratch model and
            // use their indices.
            let mut scratch = good_lp::ProblemVariables::new()
                .minimise(good_lp::Expression::from(0.0))
                .using(good_lp::highs)
                .try_into_inner()
                .map_err(|e| error(e.to_string()))?;
            let mut handles = Vec::with_capacity(last + 1);
            for _ in 0..=last {
                let col = scratch
                    .try_add_column(0.0, 0.0..=0.0, std::iter::empty())
                    .map_err(|e| error(format!("column handle: {e:?}")))?;
                handles.push(col);
            }
            // The solved model back as a model (its basis kept); `scratch` names the type.
            let mut again = same_type(&scratch, solved.into());
            for c in &changes {
                again.change_column_bounds(handles[c.column], c.lo..=c.hi);
            }
            let second = again
                .try_solve()
                .map_err(|e| error(format!("re-solve failed: {e:?}")))
                .and_then(|s| read_solved!(s, opts, error));
            Ok((first, Some(second)))
        };
        match run() {
            Ok((first, second)) => (Ok(first), second),
            Err(e) => (Err(e), None),
        }
    }
}

#[cfg(feature = "microlp")]
mod micro {
    use good_lp::{
        ResolutionError, Solution, SolutionStatus, SolverModel, WithInitialSolution, WithMipGap,
        WithTimeLimit,
    };

    use super::{Failure, LinearModel, Outcome, SolveOptions, Solved, to_good_lp};

    /// microlp (pure Rust); it reports no gap unless it proves optimality.
    pub(super) fn solve(
        model: &LinearModel,
        start: Option<&[f64]>,
        opts: &SolveOptions,
    ) -> Result<Solved, Failure> {
        let (pv, cols, objective, rows) = to_good_lp(model);
        let mut problem = pv
            .minimise(objective)
            .using(good_lp::microlp)
            .with_time_limit(opts.time_limit_s.max(0.0))
            .with_mip_gap(opts.mip_gap.max(0.0) as f32)
            .map_err(|e| Failure::NoSolution(format!("microlp: {e}")))?;
        if let Some(start) = start {
            problem =
                problem.with_initial_solution(cols.iter().copied().zip(start.iter().copied()));
        }
        for r in rows {
            problem.add_constraint(r);
        }
        match problem.solve() {
            Ok(sol) => {
                let (outcome, gap) = match sol.status() {
                    SolutionStatus::Optimal => (Outcome::Optimal, Some(0.0)),
                    SolutionStatus::GapLimit => (Outcome::GapReached, None),
                    SolutionStatus::TimeLimit => (Outcome::TimeLimit, None),
                };
                Ok(Solved {
                    values: cols.iter().map(|&c| sol.value(c)).collect(),
                    outcome,
                    gap,
                })
            }
            Err(ResolutionError::Infeasible) => Err(Failure::Infeasible),
            Err(e) => Err(Failure::NoSolution(format!("microlp: {e}"))),
        }
    }
}
