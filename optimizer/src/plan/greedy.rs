//! Greedy plans: the MILP's warm start (each replica where its marginal cost is lowest)
//! and the reference plan (each replica where the most CPU is free, like the default
//! Kubernetes scheduler's least-allocated scoring).
//!
//! Both respect every hard constraint; either may fail on instances the MILP solves
//! (packing is hard), in which case they say which workload they could not place.
//! [`repair`] completes a partial plan (the floored LP relaxation) the same way.

use std::cmp::Ordering;

use crate::cost::Objectives;
use crate::model::{Resource, Resources};

use super::classes::{Instance, dot};

/// How the greedy picks a target for the next replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Lowest marginal weighted cost (idle power of waking, migration included).
    Cheapest,
    /// Most free CPU fraction after placing; powered-on targets before sleeping ones.
    LeastAllocated,
    /// Least free CPU fraction after placing (best fit); powered-on targets first. Packs
    /// tight instances the cheapest rule fragments.
    BestFit,
}

/// A feasible starting plan: the cheapest-first greedy, or best-fit packing when the
/// cheapest-first one cannot place everything (tight capacity).
pub(crate) fn warm_start(inst: &Instance<'_>) -> Result<Vec<u32>, String> {
    place(inst, Rule::Cheapest).or_else(|cheapest| {
        place(inst, Rule::BestFit)
            .map_err(|packed| format!("{cheapest}; best-fit packing: {packed}"))
    })
}

/// Places every replica of every class; returns replicas per pair.
pub(crate) fn place(inst: &Instance<'_>, rule: Rule) -> Result<Vec<u32>, String> {
    place_from(inst, rule, None, &inst.coef)
}

/// A feasible plan that keeps as much of `seed` (replicas per pair, e.g. a floored LP
/// solution) as the constraints allow and places the rest cheapest-first under `coef`, or
/// by best-fit packing when that fails.
pub(crate) fn repair(
    inst: &Instance<'_>,
    seed: &[u32],
    coef: &Objectives,
) -> Result<Vec<u32>, String> {
    place_from(inst, Rule::Cheapest, Some(seed), coef).or_else(|cheapest| {
        place_from(inst, Rule::BestFit, Some(seed), coef)
            .map_err(|packed| format!("{cheapest}; best-fit packing: {packed}"))
    })
}

/// Places affinity groups (where `seed` has most of them), then the seeded replicas, then
/// the rest of every class, most constrained class first.
fn place_from(
    inst: &Instance<'_>,
    rule: Rule,
    seed: Option<&[u32]>,
    coef: &Objectives,
) -> Result<Vec<u32>, String> {
    let mut s = State::new(inst, rule, *coef);
    for g in 0..inst.affinity_groups.len() {
        s.place_group(g, seed)?;
    }
    let order = order(inst);
    if let Some(seed) = seed {
        for &c in &order {
            s.seed_class(c, seed);
        }
    }
    for c in order {
        s.place_class(c)?;
    }
    Ok(s.x)
}

/// Classes outside affinity groups, most constrained first: spread/anti-affinity rules,
/// then the least room among their feasible targets, then the biggest.
fn order(inst: &Instance<'_>) -> Vec<usize> {
    let totals = total_free(inst);
    let mut order: Vec<usize> = (0..inst.classes.len())
        .filter(|&c| inst.classes[c].affinity.is_none())
        .collect();
    let size = |c: usize| {
        let req = inst.workload(c).requests;
        Resource::ALL
            .into_iter()
            .filter(|&r| totals.get(r) > 0.0)
            .map(|r| req.get(r) / totals.get(r))
            .fold(0.0, f64::max)
    };
    let tier = |c: usize| {
        let w = inst.workload(c);
        u8::from(w.anti_affinity_group.is_none() && w.number_of_targets.is_none())
    };
    let slack: Vec<f64> = (0..inst.classes.len()).map(|c| slack(inst, c)).collect();
    order.sort_by(|&a, &b| {
        tier(a)
            .cmp(&tier(b))
            .then(slack[a].total_cmp(&slack[b]))
            .then(size(b).total_cmp(&size(a)))
            .then(a.cmp(&b))
    });
    order
}

/// How many times over the feasible targets of class `c` could hold its replicas (by free
/// resources and spread limits, before anything is placed), bucketed by powers of two so
/// that classes of similar slack keep the size order.
fn slack(inst: &Instance<'_>, c: usize) -> f64 {
    let req = inst.workload(c).requests;
    let room: f64 = inst.class_pairs[c]
        .clone()
        .map(|p| {
            let pair = &inst.pairs[p];
            let free = inst.targets[pair.target].free();
            Resource::ALL
                .into_iter()
                .filter(|&r| req.get(r) > 0.0)
                .map(|r| (free.get(r) / req.get(r)).floor().max(0.0))
                .fold(f64::from(pair.upper), f64::min)
        })
        .sum();
    let need = f64::from(inst.classes[c].replicas.max(1));
    (room / need).max(1.0).log2().floor()
}

/// Free resources summed over all targets.
fn total_free(inst: &Instance<'_>) -> Resources {
    inst.targets.iter().fold(Resources::default(), |acc, t| {
        let f = t.free();
        Resources::new(acc.cpu + f.cpu, acc.memory + f.memory, acc.gpu + f.gpu)
    })
}

/// What is left on every target while the greedy runs.
#[derive(Clone)]
pub(crate) struct State<'a, 'i> {
    pub(super) inst: &'a Instance<'i>,
    pub(super) rule: Rule,
    /// Objective coefficients the cheapest rule prices with.
    pub(super) coef: Objectives,
    pub(super) x: Vec<u32>,
    pub(super) free: Vec<Resources>,
    pub(super) headroom: Vec<f64>,
    pub(super) used: Vec<bool>,
    /// Replicas of each anti-affinity group per target, `g * targets + t`.
    pub(super) anti: Vec<u32>,
    /// Distinct targets used per class.
    pub(super) distinct: Vec<u32>,
    /// Stacking load and per-replica watts placed per target (see [`super::stacking`]).
    pub(super) stacked: Vec<(f64, f64)>,
}

pub(super) const EPS: f64 = 1e-9;

impl<'a, 'i> State<'a, 'i> {
    pub(super) fn new(inst: &'a Instance<'i>, rule: Rule, coef: Objectives) -> Self {
        let nt = inst.targets.len();
        Self {
            inst,
            rule,
            coef,
            x: vec![0; inst.pairs.len()],
            free: inst.targets.iter().map(|t| t.free()).collect(),
            headroom: (0..nt).map(|t| inst.headroom(t)).collect(),
            used: vec![false; nt],
            anti: vec![0; inst.anti_groups.len() * nt],
            distinct: vec![0; inst.classes.len()],
            stacked: vec![(0.0, 0.0); nt],
        }
    }

    /// Weighted cost of the stacking excess that `k` more (negative: fewer) replicas of
    /// pair `p` add on its target.
    pub(super) fn stacking_delta(&self, p: usize, k: f64) -> f64 {
        let pair = &self.inst.pairs[p];
        let Some(s) = &self.inst.stacking[pair.target] else {
            return 0.0;
        };
        let (load, linear) = self.stacked[pair.target];
        let after = s.excess(load + k * pair.load, linear + k * pair.linear_watts);
        dot(&self.coef, &s.per_watt) * (after - s.excess(load, linear))
    }

    /// Idle watts that using target `t` would add now.
    fn wake_watts(&self, t: usize) -> f64 {
        if self.inst.is_off(t) && !self.used[t] {
            self.inst.targets[t].idle_watts
        } else {
            0.0
        }
    }

    /// Most replicas pair `p` can take now (spread, resources, power, anti-affinity).
    pub(super) fn room(&self, p: usize) -> u32 {
        let pair = &self.inst.pairs[p];
        let t = pair.target;
        let mut n = f64::from(pair.upper - self.x[p].min(pair.upper));
        let req = self.inst.workload(pair.class).requests;
        for r in Resource::ALL {
            if req.get(r) > 0.0 {
                n = n.min(((self.free[t].get(r) + EPS) / req.get(r)).floor());
            }
        }
        let head = self.headroom[t] - self.wake_watts(t);
        if head < -EPS {
            return 0;
        }
        if pair.watts > 0.0 && head.is_finite() {
            n = n.min(((head + EPS) / pair.watts).floor());
        }
        if let Some(g) = self.inst.classes[pair.class].anti {
            n = n.min(f64::from(
                1u32.saturating_sub(self.anti[g * self.inst.targets.len() + t]),
            ));
        }
        n.max(0.0) as u32
    }

    pub(super) fn apply(&mut self, p: usize, k: u32) {
        let pair = self.inst.pairs[p];
        let t = pair.target;
        let req = self.inst.workload(pair.class).requests;
        let kf = f64::from(k);
        self.headroom[t] -= self.wake_watts(t) + pair.watts * kf;
        self.free[t] = Resources::new(
            self.free[t].cpu - req.cpu * kf,
            self.free[t].memory - req.memory * kf,
            self.free[t].gpu - req.gpu * kf,
        );
        if self.x[p] == 0 {
            self.distinct[pair.class] += 1;
        }
        self.stacked[t].0 += pair.load * kf;
        self.stacked[t].1 += pair.linear_watts * kf;
        self.x[p] += k;
        self.used[t] = true;
        if let Some(g) = self.inst.classes[pair.class].anti {
            self.anti[g * self.inst.targets.len() + t] += k;
        }
    }

    /// Marginal key of one more replica on pair `p` (lower is better).
    pub(super) fn key(&self, p: usize) -> (f64, f64) {
        let inst = self.inst;
        let pair = &inst.pairs[p];
        let t = pair.target;
        let waking = inst.is_off(t) && !self.used[t];
        match self.rule {
            Rule::Cheapest => {
                let mut k = dot(&self.coef, &pair.terms) + self.stacking_delta(p, 1.0);
                if waking {
                    k += dot(&self.coef, &inst.wake[t]);
                }
                if self.x[p] < inst.classes[pair.class].current_on(t) {
                    k -= self.coef.migration;
                }
                (0.0, k)
            }
            Rule::LeastAllocated | Rule::BestFit => {
                self.fit_key(t, inst.workload(pair.class).requests.cpu, waking)
            }
        }
    }

    /// Packing key of adding `cpu` cores to target `t`: awake targets first, then the most
    /// (least-allocated) or least (best-fit) free CPU fraction left.
    fn fit_key(&self, t: usize, cpu: f64, waking: bool) -> (f64, f64) {
        let cap = self.inst.targets[t].capacity.cpu;
        let left = if cap > 0.0 {
            (self.free[t].cpu - cpu) / cap
        } else {
            0.0
        };
        let sign = if self.rule == Rule::BestFit {
            1.0
        } else {
            -1.0
        };
        (f64::from(u8::from(waking)), sign * left)
    }

    /// Places what `seed` gives class `c` where it still fits, largest seeded pairs first,
    /// keeping enough replicas back to reach the class's number of targets.
    fn seed_class(&mut self, c: usize, seed: &[u32]) {
        let inst = self.inst;
        let want = inst.workload(c).number_of_targets;
        let mut pairs: Vec<usize> = inst.class_pairs[c]
            .clone()
            .filter(|&p| seed[p] > 0)
            .collect();
        pairs.sort_by(|&a, &b| seed[b].cmp(&seed[a]).then(a.cmp(&b)));
        let mut remaining = inst.classes[c].replicas;
        for p in pairs {
            let distinct = self.distinct[c];
            let new = self.x[p] == 0;
            if new && want.is_some_and(|n| distinct >= n) {
                continue;
            }
            let after = want.map_or(0, |n| n.saturating_sub(distinct + u32::from(new)));
            let k = seed[p]
                .min(self.room(p))
                .min(remaining.saturating_sub(after));
            if k > 0 {
                self.apply(p, k);
                remaining -= k;
            }
        }
    }

    fn place_class(&mut self, c: usize) -> Result<(), String> {
        let inst = self.inst;
        let w = inst.workload(c);
        let want = w.number_of_targets;
        let placed: u32 = inst.class_pairs[c].clone().map(|p| self.x[p]).sum();
        let mut remaining = inst.classes[c].replicas.saturating_sub(placed);
        while remaining > 0 {
            let distinct = self.distinct[c];
            let reserve_now = want.map_or(0, |n| n.saturating_sub(distinct));
            let best = inst.class_pairs[c]
                .clone()
                .filter(|&p| {
                    let new = self.x[p] == 0;
                    let after = want.map_or(0, |n| n.saturating_sub(distinct + u32::from(new)));
                    let fresh_ok = !(new && want.is_some_and(|n| distinct >= n));
                    fresh_ok && remaining > after && self.room(p) > 0
                })
                .min_by(|&a, &b| cmp_key(self.key(a), self.key(b)));
            let best = best.or_else(|| {
                // Nowhere with room: the cheapest rule moves other replicas to make some.
                (self.rule == Rule::Cheapest)
                    .then(|| self.evict_for_class(c, remaining))
                    .flatten()
            });
            let Some(p) = best else {
                return Err(format!(
                    "could not place {remaining} of {} replicas of workload {}{}",
                    inst.classes[c].replicas,
                    w.name,
                    if reserve_now > 0 {
                        format!(" on {reserve_now} more distinct targets")
                    } else {
                        String::new()
                    }
                ));
            };
            let new = self.x[p] == 0;
            let after = want.map_or(0, |n| n.saturating_sub(distinct + u32::from(new)));
            let mut k = (remaining - after).min(self.room(p));
            match self.rule {
                Rule::LeastAllocated | Rule::BestFit => k = k.min(1),
                Rule::Cheapest => {
                    let t = inst.pairs[p].target;
                    let now = inst.classes[c].current_on(t);
                    if self.x[p] < now {
                        k = k.min(now - self.x[p]);
                    }
                    // On a convex curve each replica costs more than the last: one at a time.
                    if inst.stacking[t].is_some() {
                        k = k.min(1);
                    }
                }
            }
            self.apply(p, k);
            remaining -= k;
        }
        Ok(())
    }

    /// Places a whole affinity group on the one target that suits it best: where `seed`
    /// has most of its replicas, then by the rule's key.
    fn place_group(&mut self, g: usize, seed: Option<&[u32]>) -> Result<(), String> {
        let inst = self.inst;
        let group = &inst.affinity_groups[g];
        let total: u32 = group
            .classes
            .iter()
            .map(|&c| inst.classes[c].replicas)
            .sum();
        if total == 0 {
            return Ok(());
        }
        let mass = |t: usize| -> u32 {
            seed.map_or(0, |seed| {
                group
                    .classes
                    .iter()
                    .filter_map(|&c| inst.pair_of(c, t))
                    .map(|p| seed[p])
                    .sum()
            })
        };
        let mut best: Option<(usize, u32, (f64, f64))> = None;
        for t in 0..inst.targets.len() {
            if let Some(key) = self.group_key(g, t) {
                let m = mass(t);
                let better = best
                    .is_none_or(|(_, bm, b)| m.cmp(&bm).reverse().then(cmp_key(key, b)).is_lt());
                if better {
                    best = Some((t, m, key));
                }
            }
        }
        let Some((t, _, _)) = best else {
            return Err(format!(
                "no single target can take all {total} replicas of affinity group {}",
                group.name
            ));
        };
        for &c in &group.classes {
            let n = inst.classes[c].replicas;
            if n > 0
                && let Some(p) = inst.pair_of(c, t)
            {
                self.apply(p, n);
            }
        }
        Ok(())
    }

    /// The key of putting all of group `g` on target `t`, if it fits there.
    fn group_key(&self, g: usize, t: usize) -> Option<(f64, f64)> {
        let inst = self.inst;
        let mut need = Resources::default();
        let mut watts = self.wake_watts(t);
        let mut key = (0.0, 0.0);
        let mut anti = vec![0u32; inst.anti_groups.len()];
        let (mut load, mut linear) = (0.0, 0.0);
        for &c in &inst.affinity_groups[g].classes {
            let n = inst.classes[c].replicas;
            if n == 0 {
                continue;
            }
            let p = inst.pair_of(c, t)?;
            let w = inst.workload(c);
            if n > inst.pairs[p].upper || w.number_of_targets.is_some_and(|k| k != 1) {
                return None;
            }
            let nf = f64::from(n);
            need = Resources::new(
                need.cpu + w.requests.cpu * nf,
                need.memory + w.requests.memory * nf,
                need.gpu + w.requests.gpu * nf,
            );
            watts += inst.pairs[p].watts * nf;
            if let Some(a) = inst.classes[c].anti {
                anti[a] += n;
                if anti[a] + self.anti[a * inst.targets.len() + t] > 1 {
                    return None;
                }
            }
            match self.rule {
                Rule::Cheapest => {
                    let now = f64::from(inst.classes[c].current_on(t).min(n));
                    key.1 += dot(&self.coef, &inst.pairs[p].terms) * nf - self.coef.migration * now;
                    load += inst.pairs[p].load * nf;
                    linear += inst.pairs[p].linear_watts * nf;
                }
                Rule::LeastAllocated | Rule::BestFit => {}
            }
        }
        if Resource::ALL
            .into_iter()
            .any(|r| need.get(r) > self.free[t].get(r) + EPS)
            || watts > self.headroom[t] + EPS
        {
            return None;
        }
        let waking = inst.is_off(t) && !self.used[t];
        if let (Rule::Cheapest, Some(s)) = (self.rule, &inst.stacking[t]) {
            let (l0, w0) = self.stacked[t];
            let added = s.excess(l0 + load, w0 + linear) - s.excess(l0, w0);
            key.1 += dot(&self.coef, &s.per_watt) * added;
        }
        match self.rule {
            Rule::Cheapest if waking => key.1 += dot(&self.coef, &inst.wake[t]),
            Rule::Cheapest => {}
            Rule::LeastAllocated | Rule::BestFit => key = self.fit_key(t, need.cpu, waking),
        }
        Some(key)
    }
}

pub(super) fn cmp_key(a: (f64, f64), b: (f64, f64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
}
