//! Optimizer: batch placement (the MILP) and per-pod scoring (the extender's hot path).
//!
//! Acceptance:
//! - `placement/milp/1000w-50c`: 1 000 workloads on 50 clusters, capacity tight (≥ 90 % of
//!   the fleet's CPU allocated after placement), in ≤ 1 s at ≤ 1 % gap;
//! - `placement/milp/10000pods-100c`: 10 000 single-replica pods of ≤ 50 shapes on 100
//!   clusters in ≤ 5 s at ≤ 1 % gap;
//! - `placement/score_targets/5000`: scoring 5 000 nodes for one pod in ≤ 1 ms.
//!
//! Each MILP bench times `optimizer::plan` end to end (classes, one batched power call,
//! greedy start, least-allocated reference, the LP stage — relaxation bound, LP-guided
//! repair and neighbourhood sub-MIP — then HiGHS with 1 % gap and a 5 s limit if needed) and
//! prints the status, achieved gap, model size and utilisation of one run at setup.
//! Instances are generated from fixed seeds.
//!
//! Run: `cargo bench -p benches --bench placement`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use benches::placement::{Lcg, at, fleet, milp_cases, report, shape};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use optimizer::power::{CurvePowerModel, FallbackPowerModel, OnnxPowerModel};
use optimizer::{PowerModel, SolveOptions, TargetKind, Weights, plan, score_targets};

fn bench_milp(c: &mut Criterion) {
    let power = CurvePowerModel::new();
    let options = SolveOptions::default();
    let mut group = c.benchmark_group("placement/milp");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));

    for (id, make) in milp_cases() {
        let (ws, ts) = make();
        let first = match plan(&ws, &ts, &Weights::BALANCED, at(), &power, &options) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{id}: no plan: {e}");
                std::process::exit(1);
            }
        };
        if report(id, &first, &ws, &ts, &power) > 0 {
            std::process::exit(1);
        }
        group.bench_with_input(BenchmarkId::from_parameter(id), &(ws, ts), |b, (ws, ts)| {
            b.iter(|| {
                plan(
                    black_box(ws),
                    ts,
                    &Weights::BALANCED,
                    at(),
                    &power,
                    &options,
                )
            })
        });
    }
    group.finish();
}

fn bench_score(c: &mut Criterion) {
    let mut rng = Lcg(0x5c0_4e5);
    let nodes = fleet(&mut rng, 5000, TargetKind::Node, (16.0, 128.0));
    let mut pod = shape(&mut rng, "web".into());
    pod.latency_slo_ms = BTreeMap::from([("FR".to_string(), 90.0)]);
    pod.current.insert(nodes[17].name.clone(), 1);
    let curve = CurvePowerModel::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../optimizer/models/power-mlp.onnx");
    let onnx = OnnxPowerModel::load(&path)
        .map(|m| FallbackPowerModel::new(m, CurvePowerModel::new()))
        .map_err(|e| eprintln!("score_targets/onnx skipped: {e}"))
        .ok();
    let mut models: Vec<(&str, &dyn PowerModel)> = vec![("curve", &curve)];
    if let Some(m) = &onnx {
        models.push(("onnx", m));
    }
    let mut group = c.benchmark_group("placement/score_targets");
    group.sample_size(10);
    for (name, model) in models {
        match score_targets(&pod, &nodes, &Weights::BALANCED, at(), model) {
            Ok(s) => eprintln!(
                "score_targets/{name}: {} of {} nodes feasible",
                s.iter().filter(|s| s.feasible).count(),
                s.len()
            ),
            Err(e) => {
                eprintln!("score_targets/{name} failed: {e}");
                std::process::exit(1);
            }
        }
        group.bench_with_input(BenchmarkId::new(name, nodes.len()), &nodes, |b, nodes| {
            b.iter(|| score_targets(black_box(&pod), nodes, &Weights::BALANCED, at(), model))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_score, bench_milp);
criterion_main!(benches);
