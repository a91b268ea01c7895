//! Unit tests of plans: infeasibility messages, fallback, class merging, Pareto fronts.

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::*;
use crate::model::{CarbonOutlook, Resources};
use crate::power::PowerQuery;
use crate::validate::validate;

/// Linear test power model: (max − idle) · Δu.
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

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

fn target(name: &str, cpu: f64, g: f64, fr_ms: f64) -> Target {
    Target {
        name: name.into(),
        capacity: Resources::new(cpu, 64.0 * (1u64 << 30) as f64, 0.0),
        idle_watts: 100.0,
        max_watts: 400.0,
        powered_on: true,
        carbon: CarbonOutlook::flat(g),
        latency_ms: BTreeMap::from([("FR".to_string(), fr_ms)]),
        ..Target::default()
    }
}

fn workload(name: &str, cpu: f64, replicas: u32) -> Workload {
    Workload {
        name: name.into(),
        requests: Resources::new(cpu, (1u64 << 30) as f64, 0.0),
        replicas,
        ..Workload::default()
    }
}

fn slo(mut w: Workload, ms: f64) -> Workload {
    w.latency_slo_ms.insert("FR".into(), ms);
    w
}

fn run(ws: &[Workload], ts: &[Target]) -> Result<Plan, PlanError> {
    plan(
        ws,
        ts,
        &Weights::BALANCED,
        at(),
        &Linear,
        &SolveOptions::exact(),
    )
}

fn message(r: Result<Plan, PlanError>) -> String {
    match r {
        Err(PlanError::Infeasible(report)) => report.message,
        other => panic!("expected infeasible, got {other:?}"),
    }
}

#[test]
fn says_which_rule_left_no_target() {
    let ts = [
        target("a", 2.0, 100.0, 10.0),
        target("b", 16.0, 100.0, 50.0),
    ];
    let m = message(run(&[slo(workload("web", 4.0, 1), 20.0)], &ts));
    assert!(
        m.starts_with(
            "workload web needs 4 cpu, no target with latency ≤ 20 ms to region FR has it"
        ),
        "{m}"
    );
    assert!(m.contains("most free: a with 2 cpu"), "{m}");

    let m = message(run(&[slo(workload("web", 1.0, 1), 5.0)], &ts));
    assert_eq!(
        m,
        "workload web: no permitted target has latency ≤ 5 ms to region FR (closest: a at 10 ms)"
    );

    let mut w = workload("web", 1.0, 1);
    w.allowed_targets = vec!["c".into()];
    assert!(message(run(&[w], &ts)).contains("allowed/denied lists exclude all 2 targets"));

    let mut capped = ts.clone();
    for t in &mut capped {
        t.power_cap_watts = Some(101.0);
    }
    let m = message(run(&[workload("web", 1.0, 1)], &capped));
    assert!(
        m.contains("every target with room for it would exceed its power cap"),
        "{m}"
    );

    let Err(PlanError::Infeasible(report)) = run(&[slo(workload("web", 4.0, 1), 20.0)], &ts) else {
        panic!("infeasible expected");
    };
    assert_eq!(report.workload.as_deref(), Some("web"));
    assert_eq!(report.eliminated.len(), 2);
}

#[test]
fn says_when_capacity_is_short_in_aggregate_or_per_group() {
    let ts = [target("a", 6.0, 100.0, 10.0), target("b", 4.0, 100.0, 10.0)];
    let ws = [
        workload("x", 4.0, 1),
        workload("y", 3.0, 1),
        workload("z", 3.5, 1),
    ];
    let m = message(run(&ws, &ts));
    assert!(m.starts_with("not enough cpu in aggregate"), "{m}");
    assert!(
        m.contains("need 10.5 cpu") && m.contains("have 10 cpu free"),
        "{m}"
    );

    let mut spread = workload("db", 1.0, 3);
    spread.anti_affinity_group = Some("db".into());
    let m = message(run(&[spread], &ts));
    assert!(
        m.contains("needs 3 replicas but its 2 feasible targets (a, b) fit at most 2"),
        "{m}"
    );

    // Each fits alone and the totals fit, but no packing exists: the solver decides.
    let ts = [target("a", 3.0, 100.0, 10.0), target("b", 3.0, 100.0, 10.0)];
    let mut q = workload("q", 2.0, 2);
    q.requests.memory *= 2.0;
    let ws = [workload("p", 2.0, 1), q];
    let m = message(run(&ws, &ts));
    assert!(
        m.starts_with("no plan satisfies all constraints together"),
        "{m}"
    );
}

#[test]
fn falls_back_to_the_greedy_plan_when_the_solver_has_no_time() {
    let ts: Vec<Target> = (0..6)
        .map(|i| target(&format!("t{i}"), 8.0, 50.0 + 60.0 * f64::from(i), 10.0))
        .collect();
    let ws: Vec<Workload> = (0..12)
        .map(|i| workload(&format!("w{i}"), 0.5 + 0.25 * f64::from(i % 5), 1 + i % 3))
        .collect();
    let opts = SolveOptions {
        time_limit_s: 0.0,
        ..SolveOptions::default()
    };
    let p = plan(&ws, &ts, &Weights::BALANCED, at(), &Linear, &opts).unwrap();
    let PlanStatus::Fallback { reason } = &p.status else {
        panic!("expected a fallback, got {:?}", p.status);
    };
    assert!(reason.contains("time limit"), "{reason}");
    assert!(validate(&p, &ws, &ts, &Linear).is_empty());
    assert_eq!(p.gap, None);

    let greedy_only = SolveOptions {
        backend: Backend::Greedy,
        ..SolveOptions::default()
    };
    let g = plan(&ws, &ts, &Weights::BALANCED, at(), &Linear, &greedy_only).unwrap();
    assert!(matches!(g.status, PlanStatus::Fallback { .. }));
    assert!(validate(&g, &ws, &ts, &Linear).is_empty());
    // The exact MILP is never worse than its greedy warm start.
    let exact = run(&ws, &ts).unwrap();
    assert_eq!(exact.status, PlanStatus::Optimal);
    assert!(exact.totals.objective <= g.totals.objective + 1e-9);
}

#[test]
fn identical_pods_are_planned_as_classes_and_split_back_per_pod() {
    let ts: Vec<Target> = (0..4)
        .map(|i| target(&format!("n{i}"), 16.0, 100.0 * f64::from(i + 1), 10.0))
        .collect();
    let mut ws = Vec::new();
    for i in 0..40 {
        let mut w = workload(&format!("pod-{i}"), if i % 2 == 0 { 1.0 } else { 0.5 }, 1);
        if i < 6 {
            // Running on the dirtiest node: moving costs migration.
            w.current.insert("n3".into(), 1);
        }
        ws.push(w);
    }
    let p = run(&ws, &ts).unwrap();
    assert_eq!(p.stats.classes, 2);
    assert_eq!(p.stats.workloads, 40);
    assert!(validate(&p, &ws, &ts, &Linear).is_empty());
    assert_eq!(p.assignments.len(), 40);
    assert!(p.assignments.values().all(|m| m.values().sum::<u32>() == 1));
    // Migration is counted per pod from the assignments; it matches the class count.
    let moved = ws
        .iter()
        .filter(|w| !w.current.is_empty() && !p.assignments[&w.name].contains_key("n3"))
        .count();
    assert_eq!(p.totals.units.migration, moved as f64);
}

/// Ten 2-core workloads; a green, a grey and a sleeping coal target.
fn green_grey_coal() -> (Vec<Workload>, Vec<Target>) {
    let mut ts = vec![
        target("green", 32.0, 30.0, 10.0),
        target("grey", 32.0, 400.0, 10.0),
        target("coal", 32.0, 800.0, 10.0),
    ];
    ts[2].powered_on = false;
    let ws = (0..10)
        .map(|i| workload(&format!("w{i}"), 2.0, 1))
        .collect();
    (ws, ts)
}

#[test]
fn every_saving_is_explained_against_the_least_allocated_reference() {
    let (ws, ts) = green_grey_coal();
    let p = run(&ws, &ts).unwrap();
    let r = p.reference.unwrap();
    let s = p.savings.unwrap();
    assert!(s.units.carbon_g > 0.0 && s.percent.carbon_g > 0.0);
    assert!((s.objective - (r.objective - p.totals.objective)).abs() < 1e-12);
    assert!(p.assignments.values().all(|m| m.contains_key("green")));
    let lines = p.explain();
    // Changes are signed, negative = less: this plan emits less than the reference.
    assert!(
        lines[2].contains("vs least-allocated spreading"),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("negative = less"), "{}", lines[2]);
    let carbon = format!("({} %)", super::explain::signed(-s.percent.carbon_g, 1));
    assert!(carbon.starts_with("(−"), "{carbon}");
    assert!(lines[2].contains("carbon −"), "{}", lines[2]);
    assert!(lines[2].contains(&carbon), "{}", lines[2]);
    assert!(!lines[2].contains("saves"), "{}", lines[2]);
}

#[test]
fn a_change_is_signed_negative_for_less_and_never_a_negative_saving() {
    use super::explain::signed;
    assert_eq!(signed(-47.91, 1), "−47.9");
    assert_eq!(signed(5.28, 1), "+5.3");
    assert_eq!(signed(-0.04, 1), "0.0");
    assert_eq!(signed(0.0, 0), "0");
    // A plan that uses more energy than the reference but emits less carbon (the example
    // of docs/placement-api.md): energy +…, carbon −…; no "saves -…" / "−-…" anywhere.
    let (ws, ts) = green_grey_coal();
    let mut p = run(&ws, &ts).unwrap();
    let s = p.savings.as_mut().unwrap();
    s.units.energy_wh = -353.87;
    s.percent.energy_wh = -5.28;
    s.units.carbon_g = 1529.65;
    s.percent.carbon_g = 71.22;
    s.units.migration = 2.0;
    s.objective = 9.6379;
    let line = p.explain().remove(2);
    assert!(line.contains("energy +353.9 Wh (+5.3 %)"), "{line}");
    assert!(line.contains("carbon −1.53 kg CO2e (−71.2 %)"), "{line}");
    assert!(line.contains("replicas moved −2"), "{line}");
    assert!(line.contains("objective −9.6379"), "{line}");
    for bad in ["saves -", "saves −", "−-", "+-", "--"] {
        assert!(!line.contains(bad), "`{bad}` in {line}");
    }
}

#[test]
fn pareto_front_trades_carbon_for_latency() {
    let ts = vec![
        target("green-far", 64.0, 20.0, 60.0),
        target("mid", 64.0, 200.0, 30.0),
        target("dirty-near", 64.0, 700.0, 5.0),
    ];
    let ws: Vec<Workload> = (0..4)
        .map(|i| slo(workload(&format!("w{i}"), 2.0, 2), 100.0))
        .collect();
    let sweep = ParetoOptions {
        bounded: Objective::Latency,
        points: 5,
    };
    let front = pareto_front(
        &ws,
        &ts,
        &Weights::CARBON,
        at(),
        &Linear,
        &SolveOptions::exact(),
        &sweep,
    )
    .unwrap();
    assert!(front.len() >= 3, "{}", front.len());
    for pair in front.windows(2) {
        assert!(pair[0].bounded_value < pair[1].bounded_value);
        assert!(pair[0].others > pair[1].others);
    }
    for p in &front {
        assert!(p.bounded_value <= p.epsilon + 1e-6);
        assert!(validate(&p.plan, &ws, &ts, &Linear).is_empty());
    }
    // Ends: all near (8 × 5 ms) and all green (8 × 60 ms).
    assert!((front[0].bounded_value - 40.0).abs() < 1e-6);
    assert!((front[front.len() - 1].bounded_value - 480.0).abs() < 1e-6);
}

#[test]
fn rejects_duplicate_names_and_bad_weights() {
    let ts = [target("a", 4.0, 1.0, 1.0), target("a", 4.0, 1.0, 1.0)];
    assert!(matches!(run(&[], &ts), Err(PlanError::Invalid(_))));
    let zero = Weights {
        carbon: 0.0,
        energy: 0.0,
        latency: 0.0,
        migration: 0.0,
    };
    let r = plan(
        &[],
        &ts[..1],
        &zero,
        at(),
        &Linear,
        &SolveOptions::default(),
    );
    assert!(matches!(r, Err(PlanError::Invalid(_))));
    let empty = run(&[], &ts[..1]).unwrap();
    assert!(empty.assignments.is_empty());
}

#[cfg(feature = "microlp")]
#[test]
fn microlp_backend_finds_the_same_optimum() {
    let ts: Vec<Target> = (0..3)
        .map(|i| target(&format!("t{i}"), 6.0, 80.0 * f64::from(i + 1), 10.0))
        .collect();
    let ws: Vec<Workload> = (0..4)
        .map(|i| workload(&format!("w{i}"), 1.0 + f64::from(i), 1))
        .collect();
    let micro = SolveOptions {
        backend: Backend::Microlp,
        ..SolveOptions::exact()
    };
    let m = plan(&ws, &ts, &Weights::BALANCED, at(), &Linear, &micro).unwrap();
    let h = run(&ws, &ts).unwrap();
    assert!((m.totals.objective - h.totals.objective).abs() < 1e-6);
}

fn bounded(k: usize) -> SolveOptions {
    SolveOptions {
        candidates: Some(k),
        ..SolveOptions::exact()
    }
}

#[test]
fn bounded_candidates_keep_the_cheapest_targets_and_the_current_ones() {
    // Twenty targets at rising intensity; one workload running on the dirtiest.
    let ts: Vec<Target> = (0..20)
        .map(|i| target(&format!("t{i:02}"), 8.0, 50.0 + 20.0 * f64::from(i), 5.0))
        .collect();
    let mut w = workload("w", 1.0, 3);
    w.current = BTreeMap::from([("t19".to_string(), 1)]);
    let ws = [w, workload("v", 2.0, 2)];
    let opts = bounded(4);
    let full = plan(
        &ws,
        &ts,
        &Weights::BALANCED,
        at(),
        &Linear,
        &SolveOptions::exact(),
    )
    .unwrap();
    let small = plan(&ws, &ts, &Weights::BALANCED, at(), &Linear, &opts).unwrap();
    // 2 classes × (4 cheapest + the current target of `w`) instead of 2 × 20.
    assert_eq!(full.stats.pairs, 40);
    assert_eq!(small.stats.pairs, 4 + 1 + 4);
    // The optimum uses the cheapest targets, so bounding loses nothing here.
    assert_eq!(small.assignments, full.assignments);
    assert!((small.totals.objective - full.totals.objective).abs() < 1e-9);
    // The reference is the full least-allocated plan either way.
    assert_eq!(small.reference, full.reference);
}

#[test]
fn a_bounded_model_without_a_plan_is_solved_over_every_target() {
    // The cheap targets fit 1 replica each; 6 replicas need the expensive ones too.
    let mut ts: Vec<Target> = (0..3)
        .map(|i| target(&format!("cheap{i}"), 1.0, 10.0, 5.0))
        .collect();
    ts.extend((0..3).map(|i| target(&format!("dear{i}"), 8.0, 500.0, 5.0)));
    let ws = [workload("w", 1.0, 6)];
    let p = plan(&ws, &ts, &Weights::BALANCED, at(), &Linear, &bounded(2)).unwrap();
    let placed: u32 = p.assignments["w"].values().sum();
    assert_eq!(placed, 6);
    assert_eq!(p.stats.pairs, 6, "solved over every target");
    for i in 0..3 {
        assert_eq!(p.assignments["w"].get(&format!("cheap{i}")), Some(&1));
    }
}
