//! The placement API end to end: decode + validate + solve + encode of one request.
//!
//! Acceptance: `placement_api/place/100c-1000w`, a 100-cluster × 1 000-workload request
//! (JSON, ~70 % of the free CPU requested; SLOs, spread, numberOfClusters, 30 % running
//! now) answers in ≤ 2 s through `Placer::place_body` and `serde_json::to_vec` — what
//! `POST /v1/placements` runs on its blocking thread.
//!
//! Run: `cargo bench -p benches --bench placement_api`.

use std::hint::black_box;
use std::time::Duration;

use benches::placement::{Lcg, at, fleet, thousand_workloads};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use optimizer::{Target, TargetKind, Workload};
use scheduler::config::PlacementConfig;
use scheduler::placement::{Format, Placer};
use serde_json::{Value, json};

/// The seeded request as JSON bytes.
fn request() -> Vec<u8> {
    let mut rng = Lcg(0x00c1_7e75);
    let ts = fleet(&mut rng, 100, TargetKind::Cluster, (256.0, 1024.0));
    let ws = thousand_workloads(&mut rng, &ts, 0.7);
    let body = json!({
        "at": at(),
        "weights": "balanced",
        "clusters": ts.iter().map(cluster).collect::<Vec<_>>(),
        "workloads": ws.iter().map(workload).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn cluster(t: &Target) -> Value {
    json!({
        "name": t.name,
        "capacity": {"cpu": t.capacity.cpu, "memory": t.capacity.memory},
        "allocated": {"cpu": t.allocated.cpu, "memory": t.allocated.memory},
        "power": {"idleWatts": t.idle_watts, "maxWatts": t.max_watts, "utilisation": t.utilisation},
        "carbon": {
            "gPerKwh": t.carbon.now_g_per_kwh,
            "forecast": t.carbon.forecast.iter()
                .map(|(start, g)| json!({"start": start, "gPerKwh": g}))
                .collect::<Vec<_>>(),
        },
        "latencyMs": t.latency_ms,
    })
}

/// The request form of a generated workload; affinity groups (not in the request
/// format) are dropped.
fn workload(w: &Workload) -> Value {
    let mut v = json!({
        "name": w.name,
        "replicas": w.replicas,
        "requests": {"cpu": w.requests.cpu, "memory": w.requests.memory},
        "latencySloMs": w.latency_slo_ms,
        "expectedDurationSeconds": w.expected_duration_s,
        "current": w.current,
    });
    if let Some(m) = w.max_per_target {
        v["maxPerCluster"] = json!(m);
    }
    if let Some(n) = w.number_of_targets {
        v["numberOfClusters"] = json!(n);
    }
    v
}

fn bench_place(c: &mut Criterion) {
    let placer = Placer::new(PlacementConfig::default());
    let body = request();
    match placer.place_body(&body, Format::Json, at()) {
        Ok(r) => eprintln!(
            "100c-1000w: request {} KiB, status {}, gap {:?}, solve {:.3} s, {} classes, {} pairs, carbon saved {:.1} %",
            body.len() / 1024,
            r.solver.status,
            r.solver.gap,
            r.solver.solve_seconds,
            r.solver.model.classes,
            r.solver.model.pairs,
            r.savings.map_or(f64::NAN, |s| s.carbon_percent),
        ),
        Err(e) => {
            eprintln!("100c-1000w: no placement: {e}");
            std::process::exit(1);
        }
    }
    let mut group = c.benchmark_group("placement_api/place");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("100c-1000w", |b| {
        b.iter(|| {
            let answer = placer.place_body(black_box(&body), Format::Json, at());
            answer.map(|r| serde_json::to_vec(&r).map(|v| v.len()).unwrap_or(0))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_place);
criterion_main!(benches);
