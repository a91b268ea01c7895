#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use chrono::TimeZone;
use kepler_client::snapshot::{ClusterPower, DataQuality, NodePower, Reading, Sample};
use optimizer::power::CurvePowerModel;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap()
}

fn node(total: f64, idle: f64, util: f64, sampled: DateTime<Utc>) -> NodePower {
    let r = |v| {
        Reading::classify(
            Some(Sample {
                value: v,
                at: sampled,
            }),
            at(),
            60.0,
        )
    };
    NodePower {
        total_watts: r(total),
        idle_watts: r(idle),
        active_watts: r(total - idle),
        cpu_usage_ratio: r(util),
        gpu_watts: None,
    }
}

fn snapshot(clusters: Vec<(&str, Vec<NodePower>)>, taken: DateTime<Utc>) -> FleetSnapshot {
    FleetSnapshot {
        taken_at: taken,
        origin: "test".into(),
        schema: None,
        zone: "package".into(),
        stale_after_s: 60.0,
        clusters: clusters
            .into_iter()
            .map(|(c, nodes)| {
                let nodes = nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (format!("{c}-n{i}"), n))
                    .collect();
                (
                    c.to_string(),
                    ClusterPower {
                        nodes,
                        pods: Vec::new(),
                    },
                )
            })
            .collect(),
        quality: DataQuality::default(),
    }
}

#[test]
fn fresh_cluster_power_is_summed() {
    let s = snapshot(
        vec![(
            "c1",
            vec![node(200.0, 100.0, 0.5, at()), node(300.0, 100.0, 0.3, at())],
        )],
        at(),
    );
    let p = cluster_power(Some(&s), "c1", at(), 120.0).unwrap();
    assert_eq!(p.nodes, 2);
    assert_eq!(p.total_watts, 500.0);
    assert_eq!(p.idle_watts, 200.0);
    assert!((p.utilisation - 0.4).abs() < 1e-12);
}

#[test]
fn missing_or_stale_telemetry_is_a_skip_never_zero() {
    let fresh = snapshot(vec![("c1", vec![node(200.0, 100.0, 0.5, at())])], at());
    let err = cluster_power(None, "c1", at(), 120.0).unwrap_err();
    assert_eq!(err.reason(), "TelemetryMissing");
    let err = cluster_power(Some(&fresh), "c2", at(), 120.0).unwrap_err();
    assert_eq!(err.reason(), "TelemetryMissing");
    assert!(err.message().contains("`c2`"), "{}", err.message());
    let later = at() + chrono::Duration::seconds(600);
    let err = cluster_power(Some(&fresh), "c1", later, 120.0).unwrap_err();
    assert_eq!(err.reason(), "TelemetryStale");
    assert!(err.message().contains("600 s old"), "{}", err.message());
    let old_node = at() - chrono::Duration::seconds(300);
    let partial = snapshot(
        vec![(
            "c1",
            vec![node(200.0, 100.0, 0.5, at()), node(1.0, 1.0, 0.1, old_node)],
        )],
        at(),
    );
    let err = cluster_power(Some(&partial), "c1", at(), 120.0).unwrap_err();
    assert_eq!(err.reason(), "TelemetryStale");
    assert!(err.message().contains("1 of 2 nodes"), "{}", err.message());
}

fn facts(name: &str, g_per_kwh: f64, latency: &[(&str, f64)]) -> ClusterFacts {
    ClusterFacts {
        zone: name.to_uppercase(),
        name: name.into(),
        power: PowerFacts {
            nodes: 3,
            total_watts: 600.0,
            idle_watts: 300.0,
            utilisation: 0.5,
        },
        carbon: CarbonOutlook::flat(g_per_kwh),
        allocatable: Resources {
            cpu: 24.0,
            memory: 96.0 * f64::from(1u32 << 30),
            gpu: 0.0,
        },
        latency_ms: latency.iter().map(|(r, ms)| (r.to_string(), *ms)).collect(),
        labels: BTreeMap::new(),
    }
}

fn options(regions: &[&str], combined: Option<&str>) -> ScoreOptions {
    ScoreOptions {
        weights: Weights::BALANCED,
        user_regions: regions
            .iter()
            .map(|r| (r.to_string(), r.to_string()))
            .collect(),
        combined_region: combined.map(ToString::to_string),
        reference_cpu_cores: 1.0,
        duration_s: 3600.0,
        node_profile: NodeProfile::default(),
    }
}

fn value(s: &Scored, name: &str) -> Option<i32> {
    s.items.iter().find(|i| i.name == name).map(|i| i.value)
}

#[test]
fn cleaner_grid_scores_higher_and_equal_energy_ties_at_the_top() {
    let f = [
        facts("green", 50.0, &[("eu", 10.0)]),
        facts("mid", 250.0, &[("eu", 40.0)]),
        facts("coal", 450.0, &[]),
    ];
    let out = score_clusters(&f, &options(&["eu"], None), at(), &CurvePowerModel::new()).unwrap();
    let s: Vec<&Scored> = out.iter().map(|r| r.as_ref().unwrap()).collect();
    assert_eq!(value(s[0], CARBON), Some(100));
    assert_eq!(value(s[1], CARBON), Some(0));
    assert_eq!(value(s[2], CARBON), Some(-100));
    for c in &s {
        assert_eq!(value(c, ENERGY), Some(100), "same power profile");
    }
    assert_eq!(value(s[0], "latency-eu"), Some(100));
    assert_eq!(value(s[1], "latency-eu"), Some(-100));
    // Unknown latency: no score (never a made-up one), and a note saying why.
    assert_eq!(value(s[2], "latency-eu"), None);
    assert!(s[2].notes[0].contains("latency-eu"), "{:?}", s[2].notes);
    // Combined without a user region: carbon dominates the balanced weights.
    assert!(value(s[0], COMBINED) > value(s[1], COMBINED));
    assert!(value(s[1], COMBINED) > value(s[2], COMBINED));
    for c in &s {
        assert!(c.items.iter().all(|i| (-100..=100).contains(&i.value)));
    }
}

#[test]
fn a_cluster_too_small_for_the_reference_replica_is_skipped() {
    let mut tiny = facts("tiny", 50.0, &[]);
    tiny.allocatable.cpu = 0.5;
    let out = score_clusters(
        &[tiny, facts("big", 300.0, &[])],
        &options(&[], None),
        at(),
        &CurvePowerModel::new(),
    )
    .unwrap();
    assert_eq!(out[0].as_ref().unwrap_err().reason(), "Infeasible");
    assert_eq!(value(out[1].as_ref().unwrap(), CARBON), Some(100));
}

#[test]
fn mapping_is_linear_and_clamped() {
    assert_eq!(to_ocm(0.0), -100);
    assert_eq!(to_ocm(5.0), 0);
    assert_eq!(to_ocm(10.0), 100);
    assert_eq!(to_ocm(7.26), 45);
    assert_eq!(to_ocm(11.0), 100);
    assert_eq!(to_ocm(f64::NAN), -100);
}

#[test]
fn low_utilisation_uses_the_node_profile_for_maximum_power() {
    let mut f = facts("idle", 100.0, &[]);
    f.power.utilisation = 0.01;
    let t = target(&f, &NodeProfile::default());
    assert_eq!(t.max_watts, 300.0 + 3.0 * 200.0);
    let busy = target(&facts("busy", 100.0, &[]), &NodeProfile::default());
    assert_eq!(busy.max_watts, 300.0 + 300.0 / 0.5);
    assert_eq!(busy.kind, TargetKind::Cluster);
}
