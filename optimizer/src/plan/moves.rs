//! Moves on a greedy plan: making room for a replica by moving others away (used when the
//! cheapest-first greedy finds no target with room), and a local improvement pass of
//! single-replica moves for the LP-guided plan.

use crate::cost::Objectives;
use crate::model::{Resource, Resources};

use super::classes::{Instance, dot};
use super::greedy::{EPS, Rule, State, cmp_key};

/// Local improvement of a feasible plan `x`: moves single replicas of classes without
/// affinity or number-of-targets rules to a cheaper target with room, while any move
/// lowers the cost under `coef` (every hard constraint kept).
pub(crate) fn improve(inst: &Instance<'_>, x: Vec<u32>, coef: &Objectives) -> Vec<u32> {
    const PASSES: usize = 4;
    let mut s = State::new(inst, Rule::Cheapest, *coef);
    for (p, &k) in x.iter().enumerate() {
        if k > 0 {
            s.apply(p, k);
        }
    }
    for _ in 0..PASSES {
        let mut moved = false;
        for q in 0..inst.pairs.len() {
            let pair = inst.pairs[q];
            let (d, t) = (pair.class, pair.target);
            if inst.classes[d].affinity.is_some() || inst.workload(d).number_of_targets.is_some() {
                continue;
            }
            while s.x[q] > 0 {
                let mut out = -dot(coef, &pair.terms) + s.stacking_delta(q, -1.0);
                if s.x[q] <= inst.classes[d].current_on(t) {
                    out += coef.migration;
                }
                let dest = inst.class_pairs[d]
                    .clone()
                    .filter(|&r| inst.pairs[r].target != t && s.room(r) > 0)
                    .min_by(|&a, &b| cmp_key(s.key(a), s.key(b)));
                match dest {
                    Some(r) if out + s.key(r).1 < -1e-9 => {
                        s.take(q, 1);
                        s.apply(r, 1);
                        moved = true;
                    }
                    _ => break,
                }
            }
        }
        if !moved {
            break;
        }
    }
    s.x
}

impl<'a, 'i> State<'a, 'i> {
    /// Takes `k` replicas off pair `p` (undoes [`Self::apply`]; the target stays counted
    /// as used, which only under-states its power headroom).
    pub(super) fn take(&mut self, p: usize, k: u32) {
        let pair = self.inst.pairs[p];
        let t = pair.target;
        let req = self.inst.workload(pair.class).requests;
        let k = k.min(self.x[p]);
        let kf = f64::from(k);
        self.headroom[t] += pair.watts * kf;
        self.free[t] = Resources::new(
            self.free[t].cpu + req.cpu * kf,
            self.free[t].memory + req.memory * kf,
            self.free[t].gpu + req.gpu * kf,
        );
        self.stacked[t].0 -= pair.load * kf;
        self.stacked[t].1 -= pair.linear_watts * kf;
        self.x[p] -= k;
        if self.x[p] == 0 && k > 0 {
            self.distinct[pair.class] -= 1;
        }
        if let Some(g) = self.inst.classes[pair.class].anti {
            let i = g * self.inst.targets.len() + t;
            self.anti[i] = self.anti[i].saturating_sub(k);
        }
    }

    /// Makes room for one more replica of class `c` (with `remaining` to place) on one of
    /// its targets by moving replicas of other classes away, at the least added cost;
    /// returns the pair that now has room, the state updated with the moves.
    pub(super) fn evict_for_class(&mut self, c: usize, remaining: u32) -> Option<usize> {
        let inst = self.inst;
        let want = inst.workload(c).number_of_targets;
        let distinct = self.distinct[c];
        let mut best: Option<(f64, usize, State<'a, 'i>)> = None;
        for p in inst.class_pairs[c].clone() {
            let new = self.x[p] == 0;
            let after = want.map_or(0, |n| n.saturating_sub(distinct + u32::from(new)));
            if (new && want.is_some_and(|n| distinct >= n)) || remaining <= after {
                continue;
            }
            let mut trial = self.clone();
            if let Some(cost) = trial.evict(p) {
                let cost = cost + trial.key(p).1;
                if best.as_ref().is_none_or(|b| cost < b.0) {
                    best = Some((cost, p, trial));
                }
            }
        }
        let (_, p, state) = best?;
        *self = state;
        Some(p)
    }

    /// Moves replicas of other classes off the target of pair `p` (each to the cheapest
    /// other target with room) until `p` has room for one replica; the moves' added cost,
    /// or `None` when a few moves do not make room.
    fn evict(&mut self, p: usize) -> Option<f64> {
        const MOVES: usize = 6;
        let inst = self.inst;
        let pair = inst.pairs[p];
        let t = pair.target;
        let need = inst.workload(pair.class).requests;
        let mut cost = 0.0;
        for _ in 0..MOVES {
            if self.room(p) > 0 {
                return Some(cost);
            }
            // The resource short by most, relative to the target's capacity.
            let cap = inst.targets[t].capacity;
            let (short, deficit) = Resource::ALL
                .into_iter()
                .filter(|&r| need.get(r) > 0.0 && cap.get(r) > 0.0)
                .map(|r| (r, (need.get(r) - self.free[t].get(r)) / cap.get(r)))
                .max_by(|a, b| a.1.total_cmp(&b.1))?;
            // Cheapest move of one replica away from t: (covers the deficit, size, cost).
            let mut pick: Option<(bool, f64, f64, usize, usize)> = None;
            for &q in &inst.target_pairs[t] {
                let d = inst.pairs[q].class;
                let w = inst.workload(d);
                if q == p || self.x[q] == 0 || d == pair.class {
                    continue;
                }
                if inst.classes[d].affinity.is_some() || w.number_of_targets.is_some() {
                    continue;
                }
                let size = w.requests.get(short) / cap.get(short);
                if size <= 0.0 {
                    continue;
                }
                let mut out = -dot(&self.coef, &inst.pairs[q].terms) + self.stacking_delta(q, -1.0);
                if self.x[q] <= inst.classes[d].current_on(t) {
                    out += self.coef.migration;
                }
                let dest = inst.class_pairs[d]
                    .clone()
                    .filter(|&r| inst.pairs[r].target != t && self.room(r) > 0)
                    .min_by(|&a, &b| cmp_key(self.key(a), self.key(b)));
                if let Some(r) = dest {
                    let here = (size >= deficit - EPS, size, out + self.key(r).1, q, r);
                    let better = pick.as_ref().is_none_or(|b| match (here.0, b.0) {
                        (true, true) => here.2 < b.2,
                        (true, false) => true,
                        (false, true) => false,
                        (false, false) => here.1 > b.1,
                    });
                    if better {
                        pick = Some(here);
                    }
                }
            }
            let (_, _, delta, q, r) = pick?;
            self.take(q, 1);
            self.apply(r, 1);
            cost += delta;
        }
        (self.room(p) > 0).then_some(cost)
    }
}
