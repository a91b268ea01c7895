#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the placement MILP against an independent exhaustive search.
//!
//! On random small instances (≤ 6 workloads × 4 targets, ≤ 3 replicas each) with every
//! kind of constraint, the exact MILP's objective equals the best objective found by
//! enumerating every per-workload placement, the plan's reported totals match the
//! objective recomputed here, the validator finds nothing wrong, and infeasibility is
//! reported exactly when no placement exists. Nothing here uses the crate's cost code.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use optimizer::{
    CarbonOutlook, PlanError, PlanStatus, PowerError, PowerModel, PowerQuery, Resources,
    SolveOptions, Target, Weights, Workload, plan, validate,
};
use proptest::prelude::*;

/// Linear power: (max − idle) · added cores / cores.
struct Linear;
impl PowerModel for Linear {
    fn name(&self) -> &str {
        "linear"
    }
    fn incremental_watts(&self, q: &[PowerQuery<'_>], out: &mut [f64]) -> Result<(), PowerError> {
        for (q, o) in q.iter().zip(out) {
            *o = (q.max_watts - q.idle_watts) * q.added_utilisation();
        }
        Ok(())
    }
}

const GIB: f64 = (1u64 << 30) as f64;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap()
}

#[derive(Debug, Clone)]
struct TSpec {
    cpu: u8,
    alloc: u8,
    idle: u16,
    span: u16,
    util: u8,
    on: bool,
    g: u16,
    lat: u8,
    cap: Option<u16>,
}

#[derive(Debug, Clone)]
struct WSpec {
    cpu: u8,
    mem: u8,
    replicas: u8,
    dur: u8,
    slo: Option<u8>,
    allowed: Option<u8>,
    denied: Option<u8>,
    max_per: Option<u8>,
    n_targets: Option<u8>,
    anti: bool,
    affinity: bool,
    current: Option<(u8, u8)>,
    copy_prev: bool,
}

fn tspec() -> impl Strategy<Value = TSpec> {
    (
        (3u8..=10, 0u8..=2, 40u16..=160, 50u16..=300, 0u8..=6),
        (prop::bool::weighted(0.7), 20u16..=800, 2u8..=60),
        prop::option::weighted(0.25, 40u16..=400),
    )
        .prop_map(
            |((cpu, alloc, idle, span, util), (on, g, lat), cap)| TSpec {
                cpu,
                alloc,
                idle,
                span,
                util,
                on,
                g,
                lat,
                cap,
            },
        )
}

fn wspec() -> impl Strategy<Value = WSpec> {
    (
        (
            1u8..=6,
            1u8..=4,
            prop_oneof![1 => Just(0u8), 9 => 1u8..=3],
            0u8..=2,
            prop::option::weighted(0.4, 25u8..=90),
        ),
        (
            prop::option::weighted(0.1, 0u8..4),
            prop::option::weighted(0.1, 0u8..4),
            prop::option::weighted(0.15, 1u8..=2),
            prop::option::weighted(0.1, 1u8..=2),
        ),
        (
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.15),
            prop::option::weighted(0.3, (0u8..=4, 1u8..=2)),
            prop::bool::weighted(0.3),
        ),
    )
        .prop_map(
            |(
                (cpu, mem, replicas, dur, slo),
                (allowed, denied, max_per, n_targets),
                (anti, affinity, current, copy_prev),
            )| WSpec {
                cpu,
                mem,
                replicas,
                dur,
                slo,
                allowed,
                denied,
                max_per,
                n_targets,
                anti,
                affinity,
                current,
                copy_prev,
            },
        )
}

fn weights() -> impl Strategy<Value = Weights> {
    (0u8..=4, 0u8..=4, 0u8..=4, 0u8..=4).prop_map(|(c, e, l, m)| {
        let w = Weights {
            carbon: f64::from(c),
            energy: f64::from(e),
            latency: f64::from(l),
            migration: f64::from(m),
        };
        if w.total() == 0.0 {
            Weights::BALANCED
        } else {
            w
        }
    })
}

fn build(ts: &[TSpec], ws: &[WSpec]) -> (Vec<Workload>, Vec<Target>) {
    let targets: Vec<Target> = ts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let idle = f64::from(s.idle);
            let util = f64::from(s.util) / 10.0;
            let max = idle + f64::from(s.span);
            let now = if s.on {
                idle + (max - idle) * util
            } else {
                0.0
            };
            Target {
                name: format!("t{i}"),
                capacity: Resources::new(f64::from(s.cpu), 8.0 * GIB, 0.0),
                allocated: Resources::new(f64::from(s.alloc) * 0.5, GIB, 0.0),
                idle_watts: idle,
                max_watts: max,
                utilisation: if s.on { util } else { 0.0 },
                powered_on: s.on,
                node_type: "std".into(),
                carbon: CarbonOutlook::flat(f64::from(s.g)),
                power_cap_watts: s.cap.map(|c| now.max(idle) + f64::from(c)),
                latency_ms: BTreeMap::from([("FR".to_string(), f64::from(s.lat))]),
                ..Target::default()
            }
        })
        .collect();
    let nt = targets.len() as u8;
    let mut workloads: Vec<Workload> = Vec::new();
    for (i, s) in ws.iter().enumerate() {
        let mut w = match (s.copy_prev, workloads.last()) {
            // Same shape as the previous one: exercises class merging.
            (true, Some(prev)) => Workload {
                current: BTreeMap::new(),
                ..prev.clone()
            },
            _ => Workload {
                requests: Resources::new(f64::from(s.cpu) * 0.5, f64::from(s.mem) * 0.5 * GIB, 0.0),
                expected_duration_s: [1800.0, 3600.0, 7200.0][usize::from(s.dur)],
                latency_slo_ms: s
                    .slo
                    .map(|ms| BTreeMap::from([("FR".to_string(), f64::from(ms))]))
                    .unwrap_or_default(),
                allowed_targets: s
                    .allowed
                    .map(|t| vec![format!("t{}", t % nt)])
                    .unwrap_or_default(),
                denied_targets: s
                    .denied
                    .map(|t| vec![format!("t{}", t % nt)])
                    .unwrap_or_default(),
                max_per_target: s.max_per.map(u32::from),
                number_of_targets: s.n_targets.map(u32::from),
                anti_affinity_group: s.anti.then(|| "spread".to_string()),
                affinity_group: s.affinity.then(|| "together".to_string()),
                ..Workload::default()
            },
        };
        w.name = format!("w{i}");
        w.replicas = u32::from(s.replicas);
        if let Some(n) = w.number_of_targets.as_mut() {
            // Mostly satisfiable: at most one target per replica (1 in 3 left as drawn).
            if s.dur != 0 {
                *n = (*n).min(w.replicas.max(1));
            }
        }
        if let Some((t, n)) = s.current {
            let name = if t >= nt {
                "gone".to_string()
            } else {
                format!("t{t}")
            };
            w.current.insert(name, u32::from(n));
        }
        workloads.push(w);
    }
    // Keep the exhaustive search small: at most ~20 000 combinations.
    let combos = |ws: &[Workload]| -> f64 {
        ws.iter()
            .map(|w| binomial(w.replicas as usize + targets.len() - 1, targets.len() - 1))
            .product()
    };
    while combos(&workloads) > 20_000.0 {
        if let Some(w) = workloads.iter_mut().max_by_key(|w| w.replicas) {
            w.replicas -= 1;
        }
    }
    (workloads, targets)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

// ---- The independent model -------------------------------------------------------------

fn inc(w: &Workload, t: &Target) -> f64 {
    if t.capacity.cpu > 0.0 {
        (t.max_watts - t.idle_watts) * w.requests.cpu / t.capacity.cpu
    } else {
        0.0
    }
}

fn now_watts(t: &Target) -> f64 {
    if t.powered_on {
        t.idle_watts + (t.max_watts - t.idle_watts) * t.utilisation
    } else {
        0.0
    }
}

fn free(t: &Target) -> [f64; 2] {
    [
        (t.capacity.cpu - t.allocated.cpu).max(0.0),
        (t.capacity.memory - t.allocated.memory).max(0.0),
    ]
}

/// Whether one replica may run there (policy, room for one, latency, power cap).
fn pair_ok(w: &Workload, t: &Target) -> bool {
    let f = free(t);
    let policy = !w.denied_targets.contains(&t.name)
        && (w.allowed_targets.is_empty() || w.allowed_targets.contains(&t.name));
    let room = [w.requests.cpu, w.requests.memory]
        .iter()
        .zip(f)
        .all(|(&need, free)| need <= 0.0 || need <= free + 1e-9);
    let latency = w
        .latency_slo_ms
        .iter()
        .all(|(r, slo)| t.latency_ms.get(r).is_some_and(|l| l <= slo));
    let base = if t.powered_on {
        now_watts(t)
    } else {
        t.idle_watts
    };
    let power = t
        .power_cap_watts
        .is_none_or(|cap| base + inc(w, t) <= cap + 1e-9);
    policy && room && latency && power
}

/// [energy Wh, carbon g, latency ms] of one replica.
fn replica(w: &Workload, t: &Target) -> [f64; 3] {
    let wh = inc(w, t) * w.expected_duration_s.max(1.0) / 3600.0;
    let lat = if w.latency_slo_ms.is_empty() {
        0.0
    } else {
        w.latency_slo_ms
            .keys()
            .map(|r| t.latency_ms[r])
            .sum::<f64>()
            / w.latency_slo_ms.len() as f64
    };
    [wh, wh / 1000.0 * t.carbon.now_g_per_kwh, lat]
}

fn horizon_h(ws: &[Workload]) -> f64 {
    ws.iter()
        .map(|w| w.expected_duration_s.max(1.0))
        .fold(1.0, f64::max)
        / 3600.0
}

/// [energy, carbon] of waking a target that is off.
fn wake(t: &Target, h: f64) -> [f64; 2] {
    if t.powered_on {
        return [0.0; 2];
    }
    let wh = t.idle_watts * h;
    [wh, wh / 1000.0 * t.carbon.now_g_per_kwh]
}

/// Per-objective spreads over feasible pairs (energy, carbon, latency, migration).
fn spreads(ws: &[Workload], ts: &[Target]) -> [f64; 4] {
    let h = horizon_h(ws);
    let mut lo = [f64::INFINITY; 4];
    let mut hi = [f64::NEG_INFINITY; 4];
    for w in ws {
        for t in ts.iter().filter(|t| pair_ok(w, t)) {
            let r = replica(w, t);
            let k = wake(t, h);
            let mig = if w.current.is_empty() || w.current.get(&t.name).copied().unwrap_or(0) > 0 {
                0.0
            } else {
                1.0
            };
            let v = [r[0] + k[0], r[1] + k[1], r[2], mig];
            for i in 0..4 {
                lo[i] = lo[i].min(v[i]);
                hi[i] = hi[i].max(v[i]);
            }
        }
    }
    std::array::from_fn(|i| if hi[i] >= lo[i] { hi[i] - lo[i] } else { 0.0 })
}

/// The weighted normalised objective of per-workload counts `a[w][t]`.
fn objective(ws: &[Workload], ts: &[Target], wt: &Weights, a: &[Vec<u32>]) -> f64 {
    let h = horizon_h(ws);
    let mut tot = [0.0; 4];
    for (w, row) in ws.iter().zip(a) {
        for (t, &n) in ts.iter().zip(row) {
            let r = replica(w, t);
            for i in 0..3 {
                tot[i] += r[i] * f64::from(n);
            }
        }
        for (name, &now) in &w.current {
            let kept = ts
                .iter()
                .position(|t| t.name == *name)
                .map_or(0, |i| row[i]);
            tot[3] += f64::from(now.saturating_sub(kept));
        }
    }
    for (i, t) in ts.iter().enumerate() {
        if a.iter().any(|row| row[i] > 0) {
            let k = wake(t, h);
            tot[0] += k[0];
            tot[1] += k[1];
        }
    }
    let s = spreads(ws, ts);
    let w = [wt.energy, wt.carbon, wt.latency, wt.migration];
    (0..4)
        .map(|i| {
            if s[i] > 1e-12 {
                w[i] * tot[i] / s[i]
            } else {
                0.0
            }
        })
        .sum()
}

/// Whether complete counts satisfy every plan-level rule.
fn plan_ok(ws: &[Workload], ts: &[Target], a: &[Vec<u32>]) -> bool {
    for (i, t) in ts.iter().enumerate() {
        let f = free(t);
        let cpu: f64 = ws
            .iter()
            .zip(a)
            .map(|(w, r)| w.requests.cpu * f64::from(r[i]))
            .sum();
        let mem: f64 = ws
            .iter()
            .zip(a)
            .map(|(w, r)| w.requests.memory * f64::from(r[i]))
            .sum();
        if cpu > f[0] + 1e-9 || mem > f[1] + 1e-9 {
            return false;
        }
        let used = a.iter().any(|r| r[i] > 0);
        if let (Some(cap), true) = (t.power_cap_watts, used) {
            let base = if t.powered_on {
                now_watts(t)
            } else {
                t.idle_watts
            };
            let add: f64 = ws
                .iter()
                .zip(a)
                .map(|(w, r)| inc(w, t) * f64::from(r[i]))
                .sum();
            if base + add > cap + 1e-9 {
                return false;
            }
        }
        let anti: u32 = ws
            .iter()
            .zip(a)
            .filter(|(w, _)| w.anti_affinity_group.is_some())
            .map(|(_, r)| r[i])
            .sum();
        if anti > 1 {
            return false;
        }
    }
    for (w, r) in ws.iter().zip(a) {
        let n: u32 = r.iter().sum();
        let distinct = r.iter().filter(|&&x| x > 0).count() as u32;
        if n != w.replicas
            || w.max_per_target.is_some_and(|m| r.iter().any(|&x| x > m))
            || w.number_of_targets.is_some_and(|k| distinct != k)
            || r.iter().zip(ts).any(|(&x, t)| x > 0 && !pair_ok(w, t))
        {
            return false;
        }
    }
    let together: Vec<usize> = (0..ts.len())
        .filter(|&i| {
            ws.iter()
                .zip(a)
                .any(|(w, r)| w.affinity_group.is_some() && r[i] > 0)
        })
        .collect();
    together.len() <= 1
}

/// Every way to split `n` replicas over `k` targets.
fn compositions(n: u32, k: usize) -> Vec<Vec<u32>> {
    if k == 1 {
        return vec![vec![n]];
    }
    let mut out = Vec::new();
    for first in 0..=n {
        for mut rest in compositions(n - first, k - 1) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

/// The best objective over every placement, or `None` when none is feasible.
fn brute_force(ws: &[Workload], ts: &[Target], wt: &Weights) -> Option<f64> {
    let options: Vec<Vec<Vec<u32>>> = ws
        .iter()
        .map(|w| {
            compositions(w.replicas, ts.len())
                .into_iter()
                .filter(|r| r.iter().zip(ts).all(|(&x, t)| x == 0 || pair_ok(w, t)))
                .collect()
        })
        .collect();
    let mut best: Option<f64> = None;
    let mut pick = vec![0usize; ws.len()];
    if options.iter().any(Vec::is_empty) {
        return None;
    }
    loop {
        let a: Vec<Vec<u32>> = pick
            .iter()
            .zip(&options)
            .map(|(&i, o)| o[i].clone())
            .collect();
        if plan_ok(ws, ts, &a) {
            let v = objective(ws, ts, wt, &a);
            best = Some(best.map_or(v, |b: f64| b.min(v)));
        }
        // Next combination (odometer).
        let mut i = 0;
        loop {
            if i == pick.len() {
                return best;
            }
            pick[i] += 1;
            if pick[i] < options[i].len() {
                break;
            }
            pick[i] = 0;
            i += 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn milp_optimum_equals_exhaustive_search(
        ts in prop::collection::vec(tspec(), 2..=4),
        ws in prop::collection::vec(wspec(), 1..=6),
        wt in weights(),
    ) {
        let (workloads, targets) = build(&ts, &ws);
        let brute = brute_force(&workloads, &targets, &wt);
        let result = plan(&workloads, &targets, &wt, at(), &Linear, &SolveOptions::exact());
        match (brute, result) {
            (None, Err(PlanError::Infeasible(_))) => {}
            (None, other) => prop_assert!(false, "no placement exists, but got {other:?}"),
            (Some(best), Ok(p)) => {
                prop_assert_eq!(&p.status, &PlanStatus::Optimal);
                let violations = validate(&p, &workloads, &targets, &Linear);
                prop_assert!(violations.is_empty(), "{violations:?}");
                let a: Vec<Vec<u32>> = workloads
                    .iter()
                    .map(|w| {
                        targets
                            .iter()
                            .map(|t| p.assignments[&w.name].get(&t.name).copied().unwrap_or(0))
                            .collect()
                    })
                    .collect();
                prop_assert!(plan_ok(&workloads, &targets, &a));
                let mine = objective(&workloads, &targets, &wt, &a);
                let tol = 1e-6 * best.abs().max(1.0);
                prop_assert!((mine - p.totals.objective).abs() <= tol,
                    "reported {} recomputed {mine}", p.totals.objective);
                prop_assert!((mine - best).abs() <= tol, "milp {mine} brute force {best}");
                if let Some(r) = p.reference {
                    prop_assert!(p.totals.objective <= r.objective + tol);
                }
            }
            (Some(best), Err(e)) => prop_assert!(false, "brute force found {best}, plan failed: {e}"),
        }
    }

    #[test]
    fn default_and_greedy_plans_are_valid(
        ts in prop::collection::vec(tspec(), 2..=4),
        ws in prop::collection::vec(wspec(), 1..=6),
    ) {
        let (workloads, targets) = build(&ts, &ws);
        let exact = plan(&workloads, &targets, &Weights::BALANCED, at(), &Linear, &SolveOptions::exact());
        let default = plan(&workloads, &targets, &Weights::BALANCED, at(), &Linear, &SolveOptions::default());
        let greedy = SolveOptions { backend: optimizer::Backend::Greedy, ..SolveOptions::default() };
        let greedy = plan(&workloads, &targets, &Weights::BALANCED, at(), &Linear, &greedy);
        for p in [&default, &greedy].into_iter().flatten() {
            let violations = validate(p, &workloads, &targets, &Linear);
            prop_assert!(violations.is_empty(), "{violations:?}");
        }
        match (&exact, &default) {
            (Ok(e), Ok(d)) => {
                // Within the default 1 % relative gap (plus its absolute gap). Like HiGHS,
                // the gap is relative to the plan's own objective, (plan − bound) / |plan|,
                // so the plan may exceed the optimum by up to 1 % of itself (1/0.99 − 1 of
                // the optimum), not 1 % of the optimum.
                let (d_obj, e_obj) = (d.totals.objective, e.totals.objective);
                prop_assert!(d_obj - e_obj <= 0.01 * d_obj.abs() + 1e-6 + 1e-9,
                    "default {d_obj} exact {e_obj} gap {:?}", d.gap);
                prop_assert!(d.gap.is_some_and(|g| g <= 0.01 + 1e-12));
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "exact {exact:?} vs default {default:?}"),
        }
        if let (Ok(e), Ok(g)) = (&exact, &greedy) {
            prop_assert!(e.totals.objective <= g.totals.objective + 1e-9);
        }
    }
}
