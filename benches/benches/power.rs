//! Optimizer: power prediction for a whole fleet in one batched call.
//!
//! Acceptance: ONNX inference, 5 000 rows (queries) in ≤ 1 ms.
//! Groups:
//! - `power/onnx/<n>`: `OnnxPowerModel::incremental_watts` with the shipped
//!   `optimizer/models/power-mlp.onnx` — one tract run over 2·n feature rows.
//! - `power/curve/<n>`: `CurvePowerModel::incremental_watts`, half the queries on node types
//!   with fitted curves, half on unknown types (nameplate curves).
//! - `power/fallback/<n>`: `FallbackPowerModel` wrapping the ONNX model (the production path).
//! - `power/onnx-rows/<n>`: `OnnxPowerModel::predict_watts` — inference alone on `n` feature
//!   rows (the acceptance line: 5 000 rows).
//!
//! Run: `cargo bench -p benches --bench power`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use optimizer::power::{CurvePowerModel, FallbackPowerModel, OnnxPowerModel};
use optimizer::{PowerCurve, PowerModel, PowerQuery};

/// Node types with fitted curves, and nameplates (idle, max watts, cores) for the fleet.
const FITTED: [&str; 4] = ["std-x86", "highmem-x86", "arm64", "gpu-host"];
const UNFITTED: [&str; 4] = ["legacy-a", "legacy-b", "edge-small", "edge-large"];
const NAMEPLATES: [(f64, f64, f64); 4] = [
    (54.1, 243.0, 32.0),
    (99.5, 246.0, 128.0),
    (20.0, 93.1, 12.0),
    (127.0, 619.0, 160.0),
];

/// Deterministic fleet: `n` queries with varied utilisation and requests (64-bit LCG).
fn fleet(n: usize) -> Vec<PowerQuery<'static>> {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let (idle, max, cores) = NAMEPLATES[i % NAMEPLATES.len()];
            let types = if i % 2 == 0 { &FITTED } else { &UNFITTED };
            PowerQuery {
                node_type: types[(i / 2) % types.len()],
                idle_watts: idle,
                max_watts: max,
                cpu_cores: cores,
                utilisation: next(),
                added_cpu_cores: 0.1 + 4.0 * next(),
            }
        })
        .collect()
}

fn curve_model() -> CurvePowerModel {
    let mut model = CurvePowerModel::new();
    for (i, ty) in FITTED.iter().enumerate() {
        let (idle, max, _) = NAMEPLATES[i];
        model.insert(
            *ty,
            PowerCurve::from_idle_max(idle, max, 0.5 + i as f64 * 0.4),
        );
    }
    model
}

fn bench_power(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../optimizer/models/power-mlp.onnx");
    let onnx = match OnnxPowerModel::load(&path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot load the shipped model: {e}");
            std::process::exit(1);
        }
    };
    let curve = curve_model();
    let fallback = FallbackPowerModel::new(onnx.clone(), curve_model());
    let models: [(&str, &dyn PowerModel); 3] =
        [("onnx", &onnx), ("curve", &curve), ("fallback", &fallback)];

    let mut group = c.benchmark_group("power");
    for n in [100usize, 1_000, 5_000] {
        let queries = fleet(n);
        let mut out = vec![0.0; n];
        group.throughput(Throughput::Elements(n as u64));
        for (name, model) in models {
            if let Err(e) = model.incremental_watts(&queries, &mut out) {
                eprintln!("{name} failed on the benchmark fleet: {e}");
                std::process::exit(1);
            }
            group.bench_with_input(BenchmarkId::new(name, n), &queries, |b, q| {
                b.iter(|| model.incremental_watts(black_box(q), &mut out))
            });
        }
    }
    for n in [1_000usize, 5_000] {
        let rows: Vec<[f32; 3]> = fleet(n)
            .iter()
            .map(|q| {
                [
                    q.utilisation as f32,
                    q.idle_watts as f32,
                    q.max_watts as f32,
                ]
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("onnx-rows", n), &rows, |b, r| {
            b.iter(|| onnx.predict_watts(black_box(r)))
        });
    }
    group.finish();
    if fallback.fallback_count() != 0 {
        eprintln!(
            "warning: the fallback model fell back {} times",
            fallback.fallback_count()
        );
    }
}

criterion_group!(benches, bench_power);
criterion_main!(benches);
