//! The reference plan savings are measured against: what a default scheduler would do.
//!
//! Each replica goes to the feasible target with the most free CPU fraction after placing
//! it (Kubernetes' least-allocated scoring), ignoring energy and carbon; targets that are
//! powered on come first, a sleeping target is used only when no awake one fits. It obeys
//! the same hard constraints as the optimised plan, and its totals are priced with the
//! same objective terms and normalisers, so every saving is like for like.

use crate::cost::{Contributions, Objectives};

use super::classes::Instance;
use super::greedy::{self, Rule};
use super::{Savings, Totals, evaluate};

/// Totals of the reference plan, or why the least-allocated greedy could not place all.
pub(crate) fn reference(inst: &Instance<'_>) -> Result<Totals, String> {
    let x = greedy::place(inst, Rule::LeastAllocated)
        .map_err(|e| format!("least-allocated reference plan: {e}"))?;
    let assignments = evaluate::disaggregate(inst, &x);
    Ok(evaluate::totals(inst, &x, &assignments))
}

/// Reference minus plan, per objective and overall.
pub(crate) fn savings(plan: &Totals, reference: &Totals) -> Savings {
    let units = reference.units.add(&plan.units.scale(-1.0));
    let pct = |saved: f64, base: f64| {
        if base.abs() > 1e-12 {
            100.0 * saved / base
        } else {
            0.0
        }
    };
    let (r, p) = (&reference.contributions, &plan.contributions);
    Savings {
        units,
        contributions: Contributions {
            carbon: r.carbon - p.carbon,
            energy: r.energy - p.energy,
            latency: r.latency - p.latency,
            migration: r.migration - p.migration,
        },
        objective: reference.objective - plan.objective,
        percent: Objectives {
            energy_wh: pct(units.energy_wh, reference.units.energy_wh),
            carbon_g: pct(units.carbon_g, reference.units.carbon_g),
            latency_ms: pct(units.latency_ms, reference.units.latency_ms),
            migration: pct(units.migration, reference.units.migration),
        },
    }
}
