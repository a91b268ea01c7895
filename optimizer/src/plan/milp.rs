//! The placement MILP as a plain sparse model, independent of the solver backend.
//!
//! Variables: integer replicas `x[c,t]` per feasible (class, target) pair; binary `y[t]`
//! "target woken" for targets that are off; continuous `m[c,t] ≥ current − x` for
//! migration; binary `z[g,t]` per affinity group; binary `b[c,t]` "target used" for
//! classes that need an exact number of targets; continuous `L[t]` and `P[t]`, the load
//! and the incremental watts of a target whose power curve is convex (`P` above every
//! segment of its [`super::stacking::Stacking`]; its replicas' per-replica watts are paid
//! through `P` instead).
//!
//! Rows: replicas exactly; capacity per resource (scaled to 1, times `y` for sleeping
//! targets); `x ≤ upper·y`; power caps; anti-affinity (≤ 1 per target); affinity (one
//! target); number of targets; migration; and optionally an ε bound on one objective.

use crate::cost::Objectives;
use crate::model::Resource;

use super::classes::{Instance, Pair, dot};

/// A column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Var {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Integer (binaries are integers in 0..=1).
    pub integer: bool,
    /// Objective coefficient.
    pub cost: f64,
}

/// Direction of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sense {
    /// `Σ ≤ rhs`.
    Le,
    /// `Σ ≥ rhs`.
    Ge,
    /// `Σ = rhs`.
    Eq,
}

/// A row `Σ coef·var (sense) rhs`.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Sparse coefficients.
    pub coefs: Vec<(usize, f64)>,
    /// Direction.
    pub sense: Sense,
    /// Right-hand side.
    pub rhs: f64,
}

/// A minimisation MILP.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinearModel {
    /// Columns.
    pub vars: Vec<Var>,
    /// Rows.
    pub rows: Vec<Row>,
    /// Constant added to the objective.
    pub offset: f64,
}

impl LinearModel {
    fn var(&mut self, lo: f64, hi: f64, integer: bool, cost: f64) -> usize {
        self.vars.push(Var {
            lo,
            hi,
            integer,
            cost,
        });
        self.vars.len() - 1
    }

    fn row(&mut self, coefs: Vec<(usize, f64)>, sense: Sense, rhs: f64) {
        if !coefs.is_empty() {
            self.rows.push(Row { coefs, sense, rhs });
        }
    }

    /// Whether `values` satisfies bounds, integrality and rows within `tol`.
    pub fn is_feasible(&self, values: &[f64], tol: f64) -> bool {
        values.len() == self.vars.len()
            && self.vars.iter().zip(values).all(|(v, &x)| {
                x >= v.lo - tol && x <= v.hi + tol && (!v.integer || (x - x.round()).abs() <= tol)
            })
            && self.rows.iter().all(|r| {
                let lhs: f64 = r.coefs.iter().map(|&(j, a)| a * values[j]).sum();
                match r.sense {
                    Sense::Le => lhs <= r.rhs + tol,
                    Sense::Ge => lhs >= r.rhs - tol,
                    Sense::Eq => (lhs - r.rhs).abs() <= tol,
                }
            })
    }

    /// Objective value of `values` (offset included).
    pub fn objective(&self, values: &[f64]) -> f64 {
        self.offset
            + self
                .vars
                .iter()
                .zip(values)
                .map(|(v, &x)| v.cost * x)
                .sum::<f64>()
    }

    /// The model over its free columns only: every column whose bounds meet is replaced
    /// by its value (moved into the right-hand sides and the offset); also the kept
    /// columns' indices. `None` when a row left without columns is broken by the fixed
    /// values (the restriction is infeasible).
    pub fn without_fixed(&self) -> Option<(LinearModel, Vec<usize>)> {
        let mut index = vec![usize::MAX; self.vars.len()];
        let mut reduced = LinearModel {
            offset: self.offset,
            ..LinearModel::default()
        };
        let mut kept = Vec::new();
        for (j, v) in self.vars.iter().enumerate() {
            if v.hi - v.lo > 1e-9 {
                index[j] = kept.len();
                kept.push(j);
                reduced.vars.push(*v);
            } else {
                reduced.offset += v.cost * v.lo;
            }
        }
        for r in &self.rows {
            let mut rhs = r.rhs;
            let mut coefs = Vec::with_capacity(r.coefs.len());
            for &(j, a) in &r.coefs {
                match index[j] {
                    usize::MAX => rhs -= a * self.vars[j].lo,
                    k => coefs.push((k, a)),
                }
            }
            if coefs.is_empty() {
                let ok = match r.sense {
                    Sense::Le => rhs >= -1e-9,
                    Sense::Ge => rhs <= 1e-9,
                    Sense::Eq => rhs.abs() <= 1e-9,
                };
                if !ok {
                    return None;
                }
            } else {
                reduced.rows.push(Row {
                    coefs,
                    sense: r.sense,
                    rhs,
                });
            }
        }
        Some((reduced, kept))
    }

    /// Column values of this model from those of its [`Self::without_fixed`] reduction.
    pub fn expand(&self, kept: &[usize], reduced: &[f64]) -> Vec<f64> {
        let mut values: Vec<f64> = self.vars.iter().map(|v| v.lo).collect();
        for (&j, &x) in kept.iter().zip(reduced) {
            values[j] = x;
        }
        values
    }

    /// Number of integer columns.
    pub fn integers(&self) -> usize {
        self.vars.iter().filter(|v| v.integer).count()
    }
}

/// Where each family of variables lives in the model.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// `x` column per pair.
    pub x: Vec<usize>,
    /// `y` column per target (sleeping targets with pairs only).
    pub y: Vec<Option<usize>>,
    /// `(column, pair, current replicas)` for migration.
    pub m: Vec<(usize, usize, u32)>,
    /// `(column, group, target)` for affinity.
    pub z: Vec<(usize, usize, usize)>,
    /// `(column, pair)` for number-of-targets binaries.
    pub b: Vec<(usize, usize)>,
    /// `(load column, power column, target)` for stacking.
    pub e: Vec<(usize, usize, usize)>,
}

/// An objective the ε-constraint can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bounded {
    /// Energy, Wh.
    Energy,
    /// Carbon, g.
    Carbon,
    /// Latency, ms summed over replicas.
    Latency,
    /// Replicas moved.
    Migration,
}

impl Bounded {
    /// This objective's component of `o`.
    pub fn of(self, o: &Objectives) -> f64 {
        match self {
            Bounded::Energy => o.energy_wh,
            Bounded::Carbon => o.carbon_g,
            Bounded::Latency => o.latency_ms,
            Bounded::Migration => o.migration,
        }
    }
}

/// Builds the model for objective coefficients `coef`, optionally with `bounded ≤ ε`.
pub(crate) fn build(
    inst: &Instance<'_>,
    coef: &Objectives,
    epsilon: Option<(Bounded, f64)>,
) -> (LinearModel, Layout) {
    let mut m = LinearModel::default();
    let nt = inst.targets.len();
    let mut lay = Layout {
        x: Vec::with_capacity(inst.pairs.len()),
        y: vec![None; nt],
        ..Layout::default()
    };
    // Wake columns first: the LP stage re-solves with their bounds changed, and HiGHS
    // column handles are cheapest for the lowest indices (see `backend::solve_twice`).
    for (t, pairs) in inst.target_pairs.iter().enumerate() {
        if inst.is_off(t) && !pairs.is_empty() {
            lay.y[t] = Some(m.var(0.0, 1.0, true, dot(coef, &inst.wake[t])));
        }
    }
    // With stacking on its target a replica's per-replica watts are paid through the
    // target's power column `P` instead (see `stacking_rows`).
    let paid = |p: &Pair, per_unit: f64| -> f64 {
        inst.stacking[p.target]
            .as_ref()
            .map_or(0.0, |_| per_unit * p.linear_watts)
    };
    for p in &inst.pairs {
        let per_watt = inst.stacking[p.target]
            .as_ref()
            .map_or(0.0, |s| dot(coef, &s.per_watt));
        let cost = dot(coef, &p.terms) - paid(p, per_watt);
        lay.x.push(m.var(0.0, f64::from(p.upper), true, cost));
    }
    // ε row collects the bounded objective's units.
    let mut eps_row: Vec<(usize, f64)> = Vec::new();
    let mut eps_const = 0.0;
    if let Some((b, _)) = epsilon {
        for (p, pair) in inst.pairs.iter().enumerate() {
            let per_watt = inst.stacking[pair.target]
                .as_ref()
                .map_or(0.0, |s| b.of(&s.per_watt));
            eps_row.push((lay.x[p], b.of(&pair.terms) - paid(pair, per_watt)));
        }
        for (t, y) in lay.y.iter().enumerate() {
            if let Some(y) = *y {
                eps_row.push((y, b.of(&inst.wake[t])));
            }
        }
    }
    let migration_bounded = matches!(epsilon, Some((Bounded::Migration, _)));

    for (c, class) in inst.classes.iter().enumerate() {
        let range = inst.class_pairs[c].clone();
        // Replicas exactly.
        let coefs: Vec<(usize, f64)> = range.clone().map(|p| (lay.x[p], 1.0)).collect();
        if coefs.is_empty() {
            // No feasible target: keep the model infeasible when replicas are wanted.
            if class.replicas > 0 {
                let v = m.var(0.0, 0.0, false, 0.0);
                m.row(vec![(v, 1.0)], Sense::Eq, f64::from(class.replicas));
            }
        } else {
            m.row(coefs, Sense::Eq, f64::from(class.replicas));
        }
        // Migration: m ≥ current − x.
        let mut constant = f64::from(class.current_elsewhere);
        for &(t, now) in &class.current {
            match inst.pair_of(c, t) {
                Some(p) => {
                    let v = m.var(0.0, f64::from(now), false, coef.migration);
                    m.row(vec![(v, 1.0), (lay.x[p], 1.0)], Sense::Ge, f64::from(now));
                    lay.m.push((v, p, now));
                    if migration_bounded {
                        eps_row.push((v, 1.0));
                    }
                }
                None => constant += f64::from(now),
            }
        }
        m.offset += coef.migration * constant;
        if migration_bounded {
            eps_const += constant;
        }
        // Exactly N distinct targets.
        if let Some(n) = inst.workload(c).number_of_targets {
            let mut sum = Vec::new();
            for p in range {
                let b = m.var(0.0, 1.0, true, 0.0);
                let upper = f64::from(inst.pairs[p].upper);
                m.row(vec![(lay.x[p], 1.0), (b, -upper)], Sense::Le, 0.0);
                m.row(vec![(lay.x[p], 1.0), (b, -1.0)], Sense::Ge, 0.0);
                lay.b.push((b, p));
                sum.push((b, 1.0));
            }
            if sum.is_empty() {
                let v = m.var(0.0, 0.0, false, 0.0);
                sum.push((v, 1.0));
            }
            m.row(sum, Sense::Eq, f64::from(n));
        }
    }

    for t in 0..nt {
        target_rows(inst, t, &mut m, &lay);
        if let Some((l, power)) = stacking_rows(inst, t, coef, &mut m, &lay) {
            lay.e.push((l, power, t));
            if let (Some((b, _)), Some(s)) = (epsilon, &inst.stacking[t]) {
                eps_row.push((power, b.of(&s.per_watt)));
            }
        }
    }
    for group in &inst.anti_groups {
        for t in 0..nt {
            let coefs: Vec<(usize, f64)> = group
                .classes
                .iter()
                .filter_map(|&c| inst.pair_of(c, t))
                .map(|p| (lay.x[p], 1.0))
                .collect();
            if coefs.len() > 1 {
                m.row(coefs, Sense::Le, 1.0);
            }
        }
    }
    for (g, group) in inst.affinity_groups.iter().enumerate() {
        let total: u32 = group
            .classes
            .iter()
            .map(|&c| inst.classes[c].replicas)
            .sum();
        if total == 0 {
            continue;
        }
        let mut one = Vec::new();
        for t in 0..nt {
            let ps: Vec<usize> = group
                .classes
                .iter()
                .filter_map(|&c| inst.pair_of(c, t))
                .collect();
            if ps.is_empty() {
                continue;
            }
            let z = m.var(0.0, 1.0, true, 0.0);
            lay.z.push((z, g, t));
            one.push((z, 1.0));
            for p in ps {
                let upper = f64::from(inst.pairs[p].upper);
                m.row(vec![(lay.x[p], 1.0), (z, -upper)], Sense::Le, 0.0);
            }
        }
        if one.is_empty() {
            let v = m.var(0.0, 0.0, false, 0.0);
            one.push((v, 1.0));
        }
        m.row(one, Sense::Eq, 1.0);
    }
    if let Some((_, eps)) = epsilon {
        eps_row.retain(|&(_, a)| a != 0.0);
        if !eps_row.is_empty() {
            m.row(eps_row, Sense::Le, eps - eps_const);
        } else if eps_const > eps + 1e-9 {
            // The bounded objective is a constant above ε: no plan qualifies.
            let v = m.var(0.0, 0.0, false, 0.0);
            m.row(vec![(v, 1.0)], Sense::Ge, 1.0);
        }
    }
    (m, lay)
}

/// Capacity, wake linking and power-cap rows of target `t`.
fn target_rows(inst: &Instance<'_>, t: usize, m: &mut LinearModel, lay: &Layout) {
    let pairs = &inst.target_pairs[t];
    if pairs.is_empty() {
        return;
    }
    let target = &inst.targets[t];
    let y = lay.y[t];
    let free = target.free();
    for r in Resource::ALL {
        let cap = free.get(r);
        let mut coefs: Vec<(usize, f64)> = pairs
            .iter()
            .filter_map(|&p| {
                let need = inst.workload(inst.pairs[p].class).requests.get(r);
                (need > 0.0).then(|| (lay.x[p], need / cap))
            })
            .collect();
        if coefs.is_empty() {
            continue;
        }
        match y {
            Some(y) => {
                coefs.push((y, -1.0));
                m.row(coefs, Sense::Le, 0.0);
            }
            None => m.row(coefs, Sense::Le, 1.0),
        }
    }
    if let Some(y) = y {
        for &p in pairs {
            let upper = f64::from(inst.pairs[p].upper);
            m.row(vec![(lay.x[p], 1.0), (y, -upper)], Sense::Le, 0.0);
        }
    }
    if let Some(cap) = target.power_cap_watts {
        let head = inst.headroom(t);
        let scale = if cap > 0.0 { 1.0 / cap } else { 1.0 };
        let mut coefs: Vec<(usize, f64)> = pairs
            .iter()
            .filter(|&&p| inst.pairs[p].watts > 0.0)
            .map(|&p| (lay.x[p], inst.pairs[p].watts * scale))
            .collect();
        if let Some(y) = y
            && target.idle_watts > 0.0
        {
            coefs.push((y, target.idle_watts * scale));
        }
        m.row(coefs, Sense::Le, head * scale);
    }
}

/// The power columns of target `t` with stacking: `L` (its load, `= Σ load·x`) and `P`
/// (its incremental watts, `≥` every segment's line of `L` and `≥ Σ linear·x`, the
/// per-replica watts it replaces in the objective); `(L, P)`, `None` without stacking.
/// Two dense rows and one short row per segment.
fn stacking_rows(
    inst: &Instance<'_>,
    t: usize,
    coef: &Objectives,
    m: &mut LinearModel,
    lay: &Layout,
) -> Option<(usize, usize)> {
    let s = inst.stacking[t].as_ref()?;
    let pairs = &inst.target_pairs[t];
    if pairs.is_empty() {
        return None;
    }
    let most: f64 = pairs
        .iter()
        .map(|&p| f64::from(inst.pairs[p].upper) * inst.pairs[p].load)
        .sum();
    let linear: f64 = pairs
        .iter()
        .map(|&p| f64::from(inst.pairs[p].upper) * inst.pairs[p].linear_watts)
        .sum();
    let l = m.var(0.0, most, false, 0.0);
    let power = m.var(
        0.0,
        s.watts(most).max(linear),
        false,
        dot(coef, &s.per_watt),
    );
    let mut load = vec![(l, 1.0)];
    load.extend(pairs.iter().map(|&p| (lay.x[p], -inst.pairs[p].load)));
    m.row(load, Sense::Eq, 0.0);
    let mut floor = vec![(power, 1.0)];
    floor.extend(
        pairs
            .iter()
            .map(|&p| (lay.x[p], -inst.pairs[p].linear_watts)),
    );
    m.row(floor, Sense::Ge, 0.0);
    for (a, slope) in s.lines() {
        m.row(vec![(power, 1.0), (l, -slope)], Sense::Ge, a);
    }
    Some((l, power))
}

/// Column values for a class-level solution `x` (replicas per pair), consistent with the
/// layout, to warm-start the solver.
pub(crate) fn start_values(
    inst: &Instance<'_>,
    model: &LinearModel,
    lay: &Layout,
    x: &[u32],
) -> Vec<f64> {
    let mut v = vec![0.0; model.vars.len()];
    for (p, &n) in x.iter().enumerate() {
        v[lay.x[p]] = f64::from(n);
        if n > 0
            && let Some(y) = lay.y[inst.pairs[p].target]
        {
            v[y] = 1.0;
        }
    }
    for &(col, p, now) in &lay.m {
        v[col] = f64::from(now.saturating_sub(x[p]));
    }
    for &(col, p) in &lay.b {
        v[col] = f64::from(u8::from(x[p] > 0));
    }
    for &(l, power, t) in &lay.e {
        let (load, linear) = inst.stacked(t, x);
        v[l] = load;
        v[power] = inst.stacking[t]
            .as_ref()
            .map_or(linear, |s| s.watts(load).max(linear));
    }
    let mut group_done = vec![false; inst.affinity_groups.len()];
    for &(col, g, t) in &lay.z {
        let here = inst.affinity_groups[g]
            .classes
            .iter()
            .filter_map(|&c| inst.pair_of(c, t))
            .any(|p| x[p] > 0);
        if here && !group_done[g] {
            v[col] = 1.0;
            group_done[g] = true;
        }
    }
    v
}

/// Replicas per pair from solver column values (rounded).
pub(crate) fn read_x(lay: &Layout, values: &[f64]) -> Vec<u32> {
    lay.x
        .iter()
        .map(|&col| values.get(col).map_or(0, |v| v.round().max(0.0) as u32))
        .collect()
}
