//! Workload classes and the priced (class, target) pairs every plan is built from.
//!
//! Identical workloads ([`Workload::same_shape`]) are merged into one class whose replicas
//! and current placements are summed, so 10 000 pods of 50 shapes are 50 rows. Merging is
//! exact: a class plan can always be split back into per-workload plans with the same
//! objective (see [`super::evaluate::disaggregate`]). Workloads with per-workload rules
//! that do not survive summing (a spread limit, a number of targets, or more replicas
//! running now than wanted) stay alone in their class.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Duration, Utc};

use crate::cost::{self, NormaliserBuilder, Normalisers, Objectives};
use crate::model::{Resource, Target, Workload};
use crate::power::{PowerModel, PowerQuery};
use crate::weights::Weights;

use super::PlanError;
use super::stacking::Stacking;

/// Interchangeable workloads, planned together.
#[derive(Debug, Clone)]
pub(crate) struct Class {
    /// Indices of the merged workloads; the first is the representative.
    pub members: Vec<usize>,
    /// Replicas to place, summed over members.
    pub replicas: u32,
    /// Replicas running now per target index, sorted by target.
    pub current: Vec<(usize, u32)>,
    /// Replicas running now on targets that are not candidates (always moved).
    pub current_elsewhere: u32,
    /// Index into [`Instance::anti_groups`].
    pub anti: Option<usize>,
    /// Index into [`Instance::affinity_groups`].
    pub affinity: Option<usize>,
}

impl Class {
    /// The representative workload index.
    pub fn rep(&self) -> usize {
        self.members[0]
    }

    /// Replicas of the class running now on target `t`.
    pub fn current_on(&self, t: usize) -> u32 {
        self.current
            .binary_search_by_key(&t, |c| c.0)
            .map_or(0, |i| self.current[i].1)
    }
}

/// One feasible (class, target) pair: what a replica of the class costs there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pair {
    /// Class index.
    pub class: usize,
    /// Target index.
    pub target: usize,
    /// Predicted incremental watts of one replica.
    pub watts: f64,
    /// Per-replica objective terms (migration unused: the MILP counts replicas moved away).
    pub terms: Objectives,
    /// Most replicas of the class this target can take on its own.
    pub upper: u32,
    /// Load one replica puts on the target for [`Stacking`]: its expected CPU cores times
    /// its share of the horizon.
    pub load: f64,
    /// `watts` times the replica's share of the horizon: what the per-replica price
    /// already counts of the target's power over the horizon.
    pub linear_watts: f64,
}

/// A named group of classes (affinity or anti-affinity).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Group name.
    pub name: String,
    /// Member classes.
    pub classes: Vec<usize>,
}

/// Everything a plan needs, priced once.
#[derive(Debug, Clone)]
pub(crate) struct Instance<'a> {
    /// The workloads as given.
    pub workloads: &'a [Workload],
    /// The targets as given.
    pub targets: &'a [Target],
    /// Merged classes.
    pub classes: Vec<Class>,
    /// Feasible pairs, sorted by class then target.
    pub pairs: Vec<Pair>,
    /// Pairs of each class.
    pub class_pairs: Vec<Range<usize>>,
    /// Pairs at each target.
    pub target_pairs: Vec<Vec<usize>>,
    /// Cost of waking each target over the horizon (zero when powered on).
    pub wake: Vec<Objectives>,
    /// Planning horizon: the longest expected duration.
    pub horizon: Duration,
    /// Shared scales.
    pub normalisers: Normalisers,
    /// The decision's weights.
    pub weights: Weights,
    /// Per-unit objective coefficients from the weights and normalisers.
    pub coef: Objectives,
    /// Anti-affinity groups.
    pub anti_groups: Vec<Group>,
    /// Affinity groups.
    pub affinity_groups: Vec<Group>,
    /// Pairs removed because an affinity partner cannot use the target: (class, target).
    pub affinity_removed: Vec<(usize, usize)>,
    /// Predicted incremental watts of one replica of every class on every target,
    /// `class * targets + target` (for explanations of infeasible pairs).
    pub watts: Vec<f64>,
    /// Per target, the convex power of replicas stacked there beyond their per-replica
    /// prices (`None`: per-replica prices are exact or the curve is not convex).
    pub stacking: Vec<Option<Stacking>>,
}

/// Weighted per-unit cost of `o` without migration.
pub(crate) fn dot(coef: &Objectives, o: &Objectives) -> f64 {
    coef.energy_wh * o.energy_wh + coef.carbon_g * o.carbon_g + coef.latency_ms * o.latency_ms
}

impl<'a> Instance<'a> {
    /// Merges, prices and filters; one batched power call for all (class, target) pairs,
    /// and one for the convex curves of stacking (`convex_power`).
    pub fn build(
        workloads: &'a [Workload],
        targets: &'a [Target],
        weights: &Weights,
        at: DateTime<Utc>,
        power: &dyn PowerModel,
        convex_power: bool,
    ) -> Result<Self, PlanError> {
        check_input(workloads, targets, weights)?;
        let index: HashMap<&str, usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let (classes, anti_groups, affinity_groups) = merge(workloads, &index);
        let horizon = workloads
            .iter()
            .map(Workload::duration)
            .max()
            .unwrap_or_else(|| Duration::seconds(1));

        let mut queries = Vec::with_capacity(classes.len() * targets.len());
        for class in &classes {
            let w = &workloads[class.rep()];
            for t in targets {
                queries.push(PowerQuery::placing(t, w.cpu_use()));
            }
        }
        let mut watts = vec![0.0; queries.len()];
        crate::power::predict(power, &queries, &mut watts)?;
        drop(queries);

        let wake: Vec<Objectives> = targets
            .iter()
            .map(|t| cost::wake_cost(t, horizon, at))
            .collect();
        // Normalisers range over every pair passing the pair rules (whatever the replica
        // counts or groups), with each member's own per-replica migration rule.
        let mut range = NormaliserBuilder::new();
        let mut running = vec![0u32; targets.len()];
        let mut pairs = Vec::new();
        for (c, class) in classes.iter().enumerate() {
            let w = &workloads[class.rep()];
            let latency = cost::NeutralLatency::of(w, targets);
            running.fill(0);
            let (mut without, mut with) = (false, 0u32);
            for &m in &class.members {
                let current = &workloads[m].current;
                if current.is_empty() {
                    without = true;
                    continue;
                }
                with += 1;
                for (name, &n) in current {
                    if let (true, Some(&t)) = (n > 0, index.get(name.as_str())) {
                        running[t] += 1;
                    }
                }
            }
            for (t, target) in targets.iter().enumerate() {
                let inc = watts[c * targets.len() + t];
                if !cost::check_pair(w, target, inc).is_empty() {
                    continue;
                }
                let terms = cost::replica_cost(w, target, inc, at, &latency).terms;
                let priced = terms.add(&wake[t]);
                for (present, migration) in
                    [(without || running[t] > 0, 0.0), (with > running[t], 1.0)]
                {
                    if present {
                        range.add(&Objectives {
                            migration,
                            ..priced
                        });
                    }
                }
                let upper = pair_upper(w, class, target, inc);
                if upper == 0 {
                    continue;
                }
                let share = w.duration().num_milliseconds() as f64
                    / horizon.num_milliseconds().max(1) as f64;
                pairs.push(Pair {
                    class: c,
                    target: t,
                    watts: inc,
                    terms,
                    upper,
                    load: w.cpu_use() * share,
                    linear_watts: inc * share,
                });
            }
        }
        let affinity_removed =
            filter_affinity(&mut pairs, &affinity_groups, &classes, targets.len());
        let normalisers = range.build();
        let coef = normalisers.coefficients(weights);

        let (class_pairs, target_pairs) = index_pairs(&pairs, classes.len(), targets.len());
        let stacking = if convex_power {
            Stacking::of_targets(targets, &pairs, &target_pairs, horizon, at, power)?
        } else {
            vec![None; targets.len()]
        };
        Ok(Self {
            workloads,
            targets,
            classes,
            pairs,
            class_pairs,
            target_pairs,
            wake,
            horizon,
            normalisers,
            weights: *weights,
            coef,
            anti_groups,
            affinity_groups,
            affinity_removed,
            watts,
            stacking,
        })
    }

    /// The same instance with each class's candidate targets bounded to the targets it
    /// runs on now plus the `k` where one replica costs least (its share of a wake
    /// included); `None` when no class has more than that. Classes whose rules couple
    /// targets (affinity, a number of targets) keep all of theirs.
    pub fn bounded(&self, k: usize) -> Option<Self> {
        let mut keep = vec![true; self.pairs.len()];
        let mut pruned = false;
        for (c, class) in self.classes.iter().enumerate() {
            let w = self.workload(c);
            if class.affinity.is_some() || w.number_of_targets.is_some() {
                continue;
            }
            let range = self.class_pairs[c].clone();
            let mut others: Vec<(f64, usize)> = range
                .filter(|&p| class.current_on(self.pairs[p].target) == 0)
                .map(|p| {
                    let pair = &self.pairs[p];
                    let share = f64::from(pair.upper.clamp(1, class.replicas.max(1)));
                    let wake = dot(&self.coef, &self.wake[pair.target]) / share;
                    (dot(&self.coef, &pair.terms) + wake, p)
                })
                .collect();
            if others.len() <= k {
                continue;
            }
            others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, p) in &others[k..] {
                keep[p] = false;
            }
            pruned = true;
        }
        if !pruned {
            return None;
        }
        let mut out = self.clone();
        let mut i = 0;
        out.pairs.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        (out.class_pairs, out.target_pairs) =
            index_pairs(&out.pairs, out.classes.len(), out.targets.len());
        Some(out)
    }

    /// The representative workload of a class.
    pub fn workload(&self, c: usize) -> &'a Workload {
        &self.workloads[self.classes[c].rep()]
    }

    /// The pair of class `c` on target `t`, if feasible.
    pub fn pair_of(&self, c: usize, t: usize) -> Option<usize> {
        let range = self.class_pairs[c].clone();
        self.pairs[range.clone()]
            .binary_search_by_key(&t, |p| p.target)
            .ok()
            .map(|i| range.start + i)
    }

    /// Watts the replicas `x` (per pair) stack on target `t` beyond their per-replica
    /// prices (0 without [`Stacking`] there).
    pub fn stacked_excess(&self, t: usize, x: &[u32]) -> f64 {
        let Some(s) = &self.stacking[t] else {
            return 0.0;
        };
        let (load, linear) = self.stacked(t, x);
        s.excess(load, linear)
    }

    /// Stacking load and per-replica watts the replicas `x` (per pair) put on target `t`.
    pub fn stacked(&self, t: usize, x: &[u32]) -> (f64, f64) {
        let (mut load, mut linear) = (0.0, 0.0);
        for &p in &self.target_pairs[t] {
            let n = f64::from(x[p]);
            load += n * self.pairs[p].load;
            linear += n * self.pairs[p].linear_watts;
        }
        (load, linear)
    }

    /// Whether target `t` must be woken to be used.
    pub fn is_off(&self, t: usize) -> bool {
        !self.targets[t].powered_on
    }

    /// Power a target may still add before its cap: `cap − current` (on) or `cap` (off,
    /// its idle power then counts when used); infinite without a cap.
    pub fn headroom(&self, t: usize) -> f64 {
        let target = &self.targets[t];
        target
            .power_cap_watts
            .map_or(f64::INFINITY, |cap| cap - target.current_watts())
    }
}

/// The pairs of each class (pairs sorted by class) and the pairs at each target.
fn index_pairs(
    pairs: &[Pair],
    classes: usize,
    targets: usize,
) -> (Vec<Range<usize>>, Vec<Vec<usize>>) {
    let mut class_pairs = vec![0..0; classes];
    let mut target_pairs = vec![Vec::new(); targets];
    let mut start = 0;
    for (c, range) in class_pairs.iter_mut().enumerate() {
        let mut end = start;
        while end < pairs.len() && pairs[end].class == c {
            target_pairs[pairs[end].target].push(end);
            end += 1;
        }
        *range = start..end;
        start = end;
    }
    (class_pairs, target_pairs)
}

/// Most replicas of `class` that `target` could take alone: replicas, free resources,
/// spread limit, anti-affinity (one), power headroom.
fn pair_upper(w: &Workload, class: &Class, target: &Target, watts: f64) -> u32 {
    let mut upper = class.replicas.min(target.free().fits(&w.requests));
    if let Some(m) = w.max_per_target {
        upper = upper.min(m);
    }
    if w.anti_affinity_group.is_some() {
        upper = upper.min(1);
    }
    if let Some(cap) = target.power_cap_watts
        && watts > 0.0
    {
        let base = if target.powered_on {
            target.current_watts()
        } else {
            target.idle_watts
        };
        let n = ((cap - base) / watts + 1e-9).floor().max(0.0);
        upper = upper.min(n.min(u32::MAX as f64) as u32);
    }
    upper
}

/// Removes pairs of affinity-group classes on targets not usable by every member with
/// replicas (those targets could never hold the whole group); returns what was removed.
fn filter_affinity(
    pairs: &mut Vec<Pair>,
    groups: &[Group],
    classes: &[Class],
    n_targets: usize,
) -> Vec<(usize, usize)> {
    let mut removed = Vec::new();
    for g in groups {
        let placed = |c: &usize| classes[*c].replicas > 0;
        let members = g.classes.iter().filter(|c| placed(c)).count();
        let mut count = vec![0usize; n_targets];
        for p in pairs
            .iter()
            .filter(|p| g.classes.contains(&p.class) && placed(&p.class))
        {
            count[p.target] += 1;
        }
        pairs.retain(|p| {
            let keep = !g.classes.contains(&p.class) || count[p.target] == members;
            if !keep {
                removed.push((p.class, p.target));
            }
            keep
        });
    }
    removed
}

/// Whether a workload may share a class with others.
fn mergeable(w: &Workload) -> bool {
    let running: u64 = w.current.values().map(|&n| u64::from(n)).sum();
    w.max_per_target.is_none() && w.number_of_targets.is_none() && running <= u64::from(w.replicas)
}

/// Merges workloads into classes and indexes their groups.
fn merge(
    workloads: &[Workload],
    index: &HashMap<&str, usize>,
) -> (Vec<Class>, Vec<Group>, Vec<Group>) {
    let mut classes: Vec<Class> = Vec::new();
    let mut current: Vec<HashMap<usize, u32>> = Vec::new();
    let mut by_key: HashMap<[u64; 4], Vec<usize>> = HashMap::new();
    for (i, w) in workloads.iter().enumerate() {
        let found = if mergeable(w) {
            let key = [
                w.requests.cpu.to_bits(),
                w.requests.memory.to_bits(),
                w.requests.gpu.to_bits(),
                w.expected_duration_s.to_bits(),
            ];
            let list = by_key.entry(key).or_default();
            let hit = list
                .iter()
                .copied()
                .find(|&c| workloads[classes[c].rep()].same_shape(w));
            if hit.is_none() {
                list.push(classes.len());
            }
            hit
        } else {
            None
        };
        let c = found.unwrap_or_else(|| {
            classes.push(Class {
                members: Vec::new(),
                replicas: 0,
                current: Vec::new(),
                current_elsewhere: 0,
                anti: None,
                affinity: None,
            });
            current.push(HashMap::new());
            classes.len() - 1
        });
        let class = &mut classes[c];
        class.members.push(i);
        class.replicas = class.replicas.saturating_add(w.replicas);
        for (name, &n) in &w.current {
            match index.get(name.as_str()) {
                Some(&t) => *current[c].entry(t).or_default() += n,
                None => class.current_elsewhere += n,
            }
        }
    }
    for (class, cur) in classes.iter_mut().zip(current) {
        class.current = cur.into_iter().filter(|&(_, n)| n > 0).collect();
        class.current.sort_unstable();
    }
    let anti = groups(
        workloads,
        &mut classes,
        |w| w.anti_affinity_group.as_deref(),
        |c, g| c.anti = Some(g),
    );
    let affinity = groups(
        workloads,
        &mut classes,
        |w| w.affinity_group.as_deref(),
        |c, g| c.affinity = Some(g),
    );
    (classes, anti, affinity)
}

/// Collects the named groups of classes.
fn groups(
    workloads: &[Workload],
    classes: &mut [Class],
    name_of: impl Fn(&Workload) -> Option<&str>,
    set: impl Fn(&mut Class, usize),
) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (c, class) in classes.iter_mut().enumerate() {
        if let Some(name) = name_of(&workloads[class.rep()]) {
            let g = *by_name.entry(name.to_string()).or_insert_with(|| {
                out.push(Group {
                    name: name.to_string(),
                    classes: Vec::new(),
                });
                out.len() - 1
            });
            out[g].classes.push(c);
            set(class, g);
        }
    }
    out
}

/// Rejects inputs no plan can be made from: duplicate names, non-finite numbers, weights
/// that do not add up to anything.
fn check_input(
    workloads: &[Workload],
    targets: &[Target],
    weights: &Weights,
) -> Result<(), PlanError> {
    let invalid = |s: String| Err(PlanError::Invalid(s));
    let ws = [
        weights.carbon,
        weights.energy,
        weights.latency,
        weights.migration,
    ];
    if ws.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.total() <= 0.0 {
        return invalid(format!(
            "weights must be finite, ≥ 0 and not all 0: {weights:?}"
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for t in targets {
        if !seen.insert(t.name.as_str()) {
            return invalid(format!("target `{}` is listed twice", t.name));
        }
        let numbers = [t.idle_watts, t.max_watts, t.utilisation]
            .into_iter()
            .chain(Resource::ALL.map(|r| t.capacity.get(r)))
            .chain(Resource::ALL.map(|r| t.allocated.get(r)))
            .chain(t.power_cap_watts)
            .chain(t.latency_ms.values().copied())
            .chain(t.carbon.forecast.iter().map(|f| f.1))
            .chain([t.carbon.now_g_per_kwh]);
        if numbers.into_iter().any(|x| !x.is_finite()) {
            return invalid(format!("target `{}` has a non-finite number", t.name));
        }
    }
    seen.clear();
    for w in workloads {
        if !seen.insert(w.name.as_str()) {
            return invalid(format!("workload `{}` is listed twice", w.name));
        }
        let numbers = Resource::ALL
            .map(|r| w.requests.get(r))
            .into_iter()
            .chain([w.expected_duration_s])
            .chain(w.expected_cpu_cores)
            .chain(w.latency_slo_ms.values().copied());
        if numbers.into_iter().any(|x| !x.is_finite() || x < 0.0) {
            return invalid(format!(
                "workload `{}` has a negative or non-finite request, expected CPU use, \
                 duration or SLO",
                w.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;
    use std::collections::BTreeMap;

    fn pod(name: &str, cpu: f64, on: Option<&str>) -> Workload {
        Workload {
            name: name.into(),
            requests: Resources::new(cpu, 1e9, 0.0),
            current: on
                .map(|t| BTreeMap::from([(t.to_string(), 1)]))
                .unwrap_or_default(),
            ..Workload::default()
        }
    }

    #[test]
    fn identical_workloads_merge_and_sum_replicas_and_current() {
        let index = HashMap::from([("a", 0), ("b", 1)]);
        let mut ws = vec![
            pod("p1", 1.0, Some("a")),
            pod("p2", 2.0, None),
            pod("p3", 1.0, Some("a")),
            pod("p4", 1.0, Some("gone")),
            pod("p5", 1.0, Some("b")),
        ];
        ws.push(Workload {
            max_per_target: Some(1),
            ..pod("spread", 1.0, None)
        });
        ws.push(Workload {
            replicas: 0,
            ..pod("shrinking", 1.0, Some("a"))
        });
        let (classes, _, _) = merge(&ws, &index);
        assert_eq!(classes.len(), 4);
        assert_eq!(classes[0].members, vec![0, 2, 3, 4]);
        assert_eq!(classes[0].replicas, 4);
        assert_eq!(classes[0].current, vec![(0, 2), (1, 1)]);
        assert_eq!(classes[0].current_elsewhere, 1);
        assert_eq!(classes[1].members, vec![1]);
        // Per-workload rules and scale-downs stay alone.
        assert_eq!(classes[2].members, vec![5]);
        assert_eq!(classes[3].members, vec![6]);
    }

    #[test]
    fn ten_thousand_pods_of_fifty_shapes_are_fifty_classes() {
        let ws: Vec<Workload> = (0..10_000)
            .map(|i| pod(&format!("p{i}"), 0.25 * f64::from(1 + i % 50), None))
            .collect();
        let (classes, _, _) = merge(&ws, &HashMap::new());
        assert_eq!(classes.len(), 50);
        assert!(classes.iter().all(|c| c.replicas == 200));
    }
}
