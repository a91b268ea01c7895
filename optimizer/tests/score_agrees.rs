#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Per-pod scores and MILP plans agree: for one workload with one replica, the target the
//! exact MILP picks has the best score (ties allowed), and when no target is feasible both
//! say so.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use optimizer::{
    CarbonOutlook, PlanError, PowerError, PowerModel, PowerQuery, Resources, SolveOptions, Target,
    Weights, Workload, best_target, plan, score_targets,
};
use proptest::prelude::*;

/// Slightly convex test power model: (max − idle) · ((u + Δu)² − u²) blended with linear.
struct Convex;
impl PowerModel for Convex {
    fn name(&self) -> &str {
        "convex"
    }
    fn incremental_watts(&self, q: &[PowerQuery<'_>], out: &mut [f64]) -> Result<(), PowerError> {
        for (q, o) in q.iter().zip(out) {
            let (u, du) = (q.utilisation, q.added_utilisation());
            let span = q.max_watts - q.idle_watts;
            *o = span * (0.5 * du + 0.5 * ((u + du).powi(2) - u * u));
        }
        Ok(())
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 6, 0, 0).unwrap()
}

prop_compose! {
    fn target(i: usize)(
        cpu in 2u8..=32,
        alloc in 0u8..=100,
        idle in 50u16..=300,
        span in 20u16..=400,
        util in 0u8..=9,
        on in prop::bool::weighted(0.75),
        now in 10u16..=900,
        later in prop::option::weighted(0.5, (1i64..=180, 10u16..=900)),
        fr in 1u8..=80,
        de in prop::option::weighted(0.8, 1u8..=80),
        cap in prop::option::weighted(0.2, 0u16..=300),
    ) -> Target {
        let idle = f64::from(idle);
        let max = idle + f64::from(span);
        let util = if on { f64::from(util) / 10.0 } else { 0.0 };
        let mut latency_ms = BTreeMap::from([("FR".to_string(), f64::from(fr))]);
        if let Some(de) = de {
            latency_ms.insert("DE".into(), f64::from(de));
        }
        let current = if on { idle + (max - idle) * util } else { idle };
        Target {
            name: format!("n{i}"),
            capacity: Resources::new(f64::from(cpu), 64e9, 0.0),
            allocated: Resources::new(f64::from(cpu) * f64::from(alloc) / 100.0, 8e9, 0.0),
            idle_watts: idle,
            max_watts: max,
            utilisation: util,
            powered_on: on,
            node_type: "std".into(),
            carbon: CarbonOutlook {
                now_g_per_kwh: f64::from(now),
                forecast: later
                    .map(|(min, g)| vec![(at() + Duration::minutes(min), f64::from(g))])
                    .unwrap_or_default(),
            },
            power_cap_watts: cap.map(|c| current + f64::from(c)),
            latency_ms,
            ..Target::default()
        }
    }
}

fn targets() -> impl Strategy<Value = Vec<Target>> {
    (1usize..=8).prop_flat_map(|n| (0..n).map(target).collect::<Vec<_>>())
}

prop_compose! {
    fn workload()(
        cpu in 1u8..=16,
        dur in 60u32..=14_400,
        fr in prop::option::weighted(0.5, 10u8..=90),
        de in prop::option::weighted(0.3, 10u8..=90),
        current in prop::option::weighted(0.4, 0usize..=8),
        denied in prop::option::weighted(0.15, 0usize..8),
    ) -> Workload {
        let mut slo = BTreeMap::new();
        if let Some(ms) = fr {
            slo.insert("FR".to_string(), f64::from(ms));
        }
        if let Some(ms) = de {
            slo.insert("DE".to_string(), f64::from(ms));
        }
        Workload {
            name: "pod".into(),
            requests: Resources::new(f64::from(cpu) * 0.5, 2e9, 0.0),
            replicas: 1,
            expected_duration_s: f64::from(dur),
            latency_slo_ms: slo,
            denied_targets: denied.map(|t| vec![format!("n{t}")]).unwrap_or_default(),
            current: current.map(|t| BTreeMap::from([(format!("n{t}"), 1)])).unwrap_or_default(),
            ..Workload::default()
        }
    }
}

fn weights() -> impl Strategy<Value = Weights> {
    (0u8..=5, 0u8..=5, 0u8..=5, 0u8..=5).prop_map(|(c, e, l, m)| {
        let w = Weights {
            carbon: f64::from(c),
            energy: f64::from(e),
            latency: f64::from(l),
            migration: f64::from(m),
        };
        if w.total() == 0.0 { Weights::CARBON } else { w }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn best_scored_target_is_the_milp_choice(ts in targets(), w in workload(), wt in weights()) {
        let scores = score_targets(&w, &ts, &wt, at(), &Convex).unwrap();
        prop_assert_eq!(scores.len(), ts.len());
        for s in &scores {
            prop_assert!((0.0..=10.0).contains(&s.score));
            prop_assert_eq!(s.feasible, s.reasons.is_empty());
            if !s.feasible {
                prop_assert_eq!(s.score, 0.0);
            }
        }
        let result = plan(
            std::slice::from_ref(&w),
            &ts,
            &wt,
            at(),
            &Convex,
            &SolveOptions::exact(),
        );
        match best_target(&scores) {
            None => prop_assert!(
                matches!(result, Err(PlanError::Infeasible(_))),
                "no feasible score but {result:?}"
            ),
            Some(best) => {
                let p = result.unwrap();
                let placed = &p.assignments["pod"];
                prop_assert_eq!(placed.values().sum::<u32>(), 1);
                let chosen = ts.iter().position(|t| placed.contains_key(&t.name)).unwrap();
                prop_assert!(scores[chosen].feasible);
                prop_assert!(
                    scores[chosen].score >= scores[best].score - 1e-9,
                    "milp chose {} (score {}), best score {} on {}",
                    ts[chosen].name, scores[chosen].score, scores[best].score, ts[best].name
                );
                // Same normalisation: the plan's contributions are the score's deductions
                // plus the per-objective minimum.
                let deduction = scores[chosen].contributions.total();
                let from_min = p.normalisers.contributions(&p.normalisers.min, &wt, false).total();
                prop_assert!((p.totals.objective - (deduction + from_min)).abs() <= 1e-6);
            }
        }
    }
}
