#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};

use super::*;
use crate::config::PlacementConfig;

/// `x` runs on a dirty cluster; `y` runs on the green one, which is too far from its users:
/// `y` must leave green (to mid) before `x` can move in.
const CHAIN: &str = r#"
at: "2026-06-15T12:00:00Z"
weights: carbon
clusters:
  - {name: dirty, capacity: {cpu: 10, memory: 64Gi}, power: {idleWatts: 300, maxWatts: 900},
     carbon: {gPerKwh: 700}, latencyMs: {eu: 5}}
  - {name: green, capacity: {cpu: 10, memory: 64Gi}, power: {idleWatts: 300, maxWatts: 900},
     carbon: {gPerKwh: 20}, latencyMs: {eu: 50}}
  - {name: mid, capacity: {cpu: 10, memory: 64Gi}, power: {idleWatts: 300, maxWatts: 900},
     carbon: {gPerKwh: 300}, latencyMs: {eu: 5}}
workloads:
  - {name: x, replicas: 1, requests: {cpu: 8, memory: 1Gi}, current: {dirty: 1}}
  - {name: y, replicas: 1, requests: {cpu: 8, memory: 1Gi}, latencySloMs: {eu: 10},
     current: {green: 1}}
"#;

fn chain() -> PlacementRequest {
    PlacementRequest::decode(CHAIN.as_bytes(), Format::Yaml).expect("decodes")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

#[test]
fn a_move_waits_for_the_room_another_move_frees() {
    let placer = Placer::new(PlacementConfig::default());
    // Every move counts: x's move (larger gain, considered first) fits once y has left.
    let r = placer.rebalance(&chain(), Some(-1e9), now()).unwrap();
    let names: Vec<&str> = r.moves.iter().map(|m| m.workload.as_str()).collect();
    assert_eq!(names, ["x", "y"], "{r:#?}");
    assert_eq!(r.moves[0].transfers[0].to, "green");
    assert!(r.moves[0].gain.carbon_g_per_hour > 0.0);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.at, Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap());
}

#[test]
fn a_move_needing_a_skipped_move_is_skipped_and_violations_remain() {
    let placer = Placer::new(PlacementConfig::default());
    // y's move costs carbon and migration: below any non-negative threshold.
    let r = placer.rebalance(&chain(), Some(0.0), now()).unwrap();
    assert!(r.moves.is_empty(), "{r:#?}");
    let reasons: Vec<(&str, &str)> = r
        .skipped
        .iter()
        .map(|s| (s.mv.workload.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(w, why)| *w == "y" && why.contains("below the minimum"))
    );
    assert!(
        reasons
            .iter()
            .any(|(w, why)| *w == "x" && why.contains("lack room"))
    );
    // y stays where its SLO is broken, and the answer says so.
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(r.violations[0].contains('y'), "{:?}", r.violations);
}

#[test]
fn explicit_weights_and_quantities_decode() {
    let body = br#"{"weights": {"carbon": 2, "latency": 1},
        "clusters": [{"name": "a", "capacity": {"cpu": "1500m", "memory": "2Gi", "gpu": 1},
                      "power": {"idleWatts": 1, "maxWatts": 2}, "carbon": {"gPerKwh": 1}}],
        "workloads": [{"name": "w", "replicas": 1, "requests": {"cpu": 0.5}}]}"#;
    let req = PlacementRequest::decode(body, Format::Json).unwrap();
    let w = validate::weights(&req.weights).unwrap();
    assert_eq!((w.carbon, w.energy, w.latency), (2.0, 0.0, 1.0));
    let t = mapping::target(&req.clusters[0]);
    assert_eq!(t.capacity.cpu, 1.5);
    assert_eq!(t.capacity.memory, 2.0 * 1024.0 * 1024.0 * 1024.0);
    assert_eq!(t.kind, optimizer::TargetKind::Cluster);
    let zero = br#"{"weights": {"carbon": 0}, "clusters": [], "workloads": []}"#;
    let req = PlacementRequest::decode(zero, Format::Json).unwrap();
    let fields: Vec<String> = validate::check(&req, false)
        .into_iter()
        .map(|f| f.field)
        .collect();
    assert_eq!(fields, ["weights", "clusters", "workloads"]);
    let trailing =
        PlacementRequest::decode(br#"{"clusters": [], "workloads": []} x"#, Format::Json);
    assert!(matches!(trailing, Err(PlacementError::Malformed(_))));
}

#[test]
fn user_regions_match_case_insensitively_and_unknown_ones_are_named() {
    let placer = Placer::new(PlacementConfig::default());
    // `EU` is the clusters' `eu`: the SLO keeps y off green exactly as with `eu`.
    let same = CHAIN.replace("latencySloMs: {eu: 10}", "latencySloMs: {EU: 10}");
    let req = PlacementRequest::decode(same.as_bytes(), Format::Yaml).expect("decodes");
    let (workloads, targets) = mapping::inputs(&req);
    assert_eq!(
        workloads[1].latency_slo_ms.keys().collect::<Vec<_>>(),
        ["eu"]
    );
    assert!(targets.iter().all(|t| t.latency_ms.contains_key("eu")));
    let plan = placer.place(&req, now()).unwrap();
    let y: Vec<&str> = plan.placements[1]
        .clusters
        .iter()
        .map(|c| c.cluster.as_str())
        .collect();
    assert!(!y.contains(&"green"), "{y:?}");
    // A region no cluster knows is a field error naming the known ones.
    let typo = CHAIN.replace("latencySloMs: {eu: 10}", "latencySloMs: {ue: 10}");
    let req = PlacementRequest::decode(typo.as_bytes(), Format::Yaml).expect("decodes");
    let Err(PlacementError::Invalid(errors)) = placer.place(&req, now()) else {
        panic!("a region no cluster knows must be refused");
    };
    assert_eq!(errors[0].field, "workloads[1].latencySloMs.ue");
    assert!(
        errors[0].message.contains("known: eu"),
        "{}",
        errors[0].message
    );
}

#[test]
fn expected_cpu_is_a_quantity_priced_as_use_and_a_negative_one_is_named() {
    let body = br#"{"clusters": [{"name": "a", "capacity": {"cpu": 8, "memory": "8Gi"},
                      "power": {"idleWatts": 1, "maxWatts": 2}, "carbon": {"gPerKwh": 1}}],
        "workloads": [{"name": "w", "replicas": 1, "requests": {"cpu": 2},
                       "expectedCpu": "500m"},
                      {"name": "v", "replicas": 1, "requests": {"cpu": 2}}]}"#;
    let req = PlacementRequest::decode(body, Format::Json).unwrap();
    assert!(validate::check(&req, false).is_empty());
    let w = mapping::workload(&req.workloads[0]);
    assert_eq!(w.expected_cpu_cores, Some(0.5));
    assert_eq!(w.cpu_use(), 0.5);
    // Without it, the request is the expected use.
    assert_eq!(mapping::workload(&req.workloads[1]).cpu_use(), 2.0);
    let bad = br#"{"clusters": [{"name": "a", "capacity": {"cpu": 8, "memory": "8Gi"},
                      "power": {"idleWatts": 1, "maxWatts": 2}, "carbon": {"gPerKwh": 1}}],
        "workloads": [{"name": "w", "replicas": 1, "requests": {"cpu": 2},
                       "expectedCpu": -1}]}"#;
    let req = PlacementRequest::decode(bad, Format::Json).unwrap();
    let fields: Vec<String> = validate::check(&req, false)
        .into_iter()
        .map(|f| f.field)
        .collect();
    assert_eq!(fields, ["workloads[0].expectedCpu"]);
}

#[test]
fn convex_power_is_opt_in_per_request() {
    let placer = Placer::new(PlacementConfig::default());
    let mut req = chain();
    assert!(
        !placer
            .prepare(&req, false, now())
            .unwrap()
            .options
            .convex_power
    );
    req.solver.convex_power = Some(true);
    assert!(
        placer
            .prepare(&req, false, now())
            .unwrap()
            .options
            .convex_power
    );
    let yaml = format!("{CHAIN}solver: {{convexPower: yes-please}}\n");
    let err = PlacementRequest::decode(yaml.as_bytes(), Format::Yaml).unwrap_err();
    assert!(err.to_string().contains("convexPower"), "{err}");
}

/// Clusters given by zone only take the intensity now and the forecast from the carbon
/// source; a zone the source does not know, or no source, is an error naming the field.
#[tokio::test]
async fn clusters_given_by_zone_read_the_carbon_source() {
    use kepler_client::carbon::{CarbonCurves, IntensityPoint};
    let at = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
    let hourly = |g: [f64; 3]| {
        (0..3).map(move |h| IntensityPoint {
            start: at + chrono::Duration::hours(h),
            duration_s: 3600,
            g_per_kwh: g[h as usize],
        })
    };
    let curves = CarbonCurves::from_points("DE", hourly([500.0, 450.0, 400.0]))
        .unwrap()
        .merge(CarbonCurves::from_points("FR", hourly([40.0, 45.0, 50.0])).unwrap());
    let body = br#"
clusters:
  - {name: de, capacity: {cpu: 8, memory: 8Gi}, power: {idleWatts: 100, maxWatts: 300}, carbon: {zone: DE}}
  - {name: fr, capacity: {cpu: 8, memory: 8Gi}, power: {idleWatts: 100, maxWatts: 300}, carbon: {zone: FR}}
  - {name: gb, capacity: {cpu: 8, memory: 8Gi}, power: {idleWatts: 100, maxWatts: 300}, carbon: {zone: GB, gPerKwh: 250}}
workloads:
  - {name: w, replicas: 2, requests: {cpu: 2}, expectedDurationSeconds: 7200}
"#;
    let placer = Placer::new(PlacementConfig::default()).with_carbon(std::sync::Arc::new(curves));
    let req = placer.decode(body, Format::Yaml, at).await.unwrap();
    let g: Vec<Option<f64>> = req.clusters.iter().map(|c| c.carbon.g_per_kwh).collect();
    assert_eq!(g, [Some(500.0), Some(40.0), Some(250.0)]);
    let fr: Vec<f64> = req.clusters[1]
        .carbon
        .forecast
        .iter()
        .map(|p| p.g_per_kwh)
        .collect();
    assert_eq!(fr, [40.0, 45.0], "the forecast over the longest run (2 h)");
    assert!(
        req.clusters[2].carbon.forecast.is_empty(),
        "given values are kept"
    );
    let plan = placer.place(&req, at).unwrap();
    let chosen: Vec<&str> = plan.placements[0]
        .clusters
        .iter()
        .map(|c| c.cluster.as_str())
        .collect();
    assert_eq!(chosen, ["fr"], "{:?}", plan.placements);

    // A zone the source does not know: named, with the source's reason.
    let unknown = String::from_utf8_lossy(body).replace("zone: GB, gPerKwh: 250", "zone: GB");
    let e = placer
        .decode(unknown.as_bytes(), Format::Yaml, at)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("clusters[2].carbon.gPerKwh") && text.contains("unknown carbon zone `GB`"),
        "{text}"
    );
    // Without a source, a zone alone is not enough.
    let bare = Placer::new(PlacementConfig::default());
    let req = bare.decode(body, Format::Yaml, at).await.unwrap();
    let e = bare.place(&req, at).unwrap_err().to_string();
    assert!(e.contains("clusters[0].carbon.gPerKwh: required"), "{e}");
}

/// Workloads with a deadline get `startAt`: the cleanest forecast window on their
/// clusters that still ends by it, with the carbon saved; without a deadline, none; with
/// a deadline too near to wait, now.
#[test]
fn deferrable_workloads_get_the_cleanest_start_before_their_deadline() {
    let body = br#"
at: "2026-12-04T00:00:00Z"
weights: carbon
clusters:
  - name: de
    capacity: {cpu: 16, memory: 64Gi}
    power: {idleWatts: 200, maxWatts: 600}
    carbon:
      zone: DE
      gPerKwh: 400
      forecast:
        - {start: "2026-12-04T00:00:00Z", gPerKwh: 400}
        - {start: "2026-12-04T01:00:00Z", gPerKwh: 380}
        - {start: "2026-12-04T02:00:00Z", gPerKwh: 350}
        - {start: "2026-12-04T03:00:00Z", gPerKwh: 120}
        - {start: "2026-12-04T04:00:00Z", gPerKwh: 300}
        - {start: "2026-12-04T05:00:00Z", gPerKwh: 420}
workloads:
  - {name: report, replicas: 2, requests: {cpu: 2}, expectedDurationSeconds: 3600, deadline: "2026-12-04T06:00:00Z"}
  - {name: web, replicas: 1, requests: {cpu: 1}}
  - {name: urgent, replicas: 1, requests: {cpu: 1}, expectedDurationSeconds: 3600, deadline: "2026-12-04T00:30:00Z"}
"#;
    let placer = Placer::new(PlacementConfig::default());
    let req = PlacementRequest::decode(body, Format::Yaml).unwrap();
    let plan = placer.place(&req, now()).unwrap();
    let at = |h: u32| Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0).unwrap();
    let report = &plan.placements[0];
    assert_eq!(report.start_at, Some(at(3)));
    let shift = report.shift.as_ref().unwrap();
    assert_eq!(shift.reason, "cleanest");
    assert_eq!(
        (shift.now_g_per_kwh, shift.window_g_per_kwh),
        (400.0, 120.0)
    );
    // 2 replicas × 2 cores × 25 W/core for 1 h = 0.1 kWh; (400 − 120) × 0.1 = 28 g.
    assert!((shift.saved_g - 28.0).abs() < 1e-6, "{shift:?}");
    assert!(
        shift
            .explanation
            .starts_with("held until 2026-12-04 03:00 UTC"),
        "{}",
        shift.explanation
    );
    assert!(plan.placements[1].start_at.is_none() && plan.placements[1].shift.is_none());
    let urgent = &plan.placements[2];
    assert_eq!(urgent.start_at, Some(at(0)));
    assert_eq!(urgent.shift.as_ref().unwrap().reason, "deadline_near");
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["placements"][0]["startAt"], "2026-12-04T03:00:00Z");
    assert_eq!(
        json["placements"][0]["shift"]["savedG"]
            .as_f64()
            .map(f64::round),
        Some(28.0)
    );
    assert!(json["placements"][1].get("startAt").is_none());
}
