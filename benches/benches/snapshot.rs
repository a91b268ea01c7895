//! Telemetry: assembling a `FleetSnapshot` from recorded Prometheus responses.
//!
//! Acceptance: 5 000 nodes and 100 000 pod series in ≤ 500 ms, from the JSON bytes.
//! Groups, per Kepler schema (`snapshot_v0.10`, `snapshot_v0.7`):
//! - `from_json/<size>`: every recorded body → `serde_json::from_slice` into the client's
//!   envelope (`PromqlResult`) → matrix → `assemble`, parsed series dropped inside the
//!   timing; the returned snapshot is dropped outside it.
//! - `parse/<size>`: the JSON part alone (parsed series dropped outside the timing).
//! - `assemble/<size>`: `assemble` alone, on series parsed once beforehand.
//!
//! Run: `cargo bench -p benches --bench snapshot` (add a filter such as `v0.10` to narrow).

use std::hint::black_box;
use std::time::Duration;

use benches::{FleetShape, Recording};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use kepler_client::KeplerSchema;

/// Benchmarks one schema at the given sizes; `parse_sizes` also get a parse-only entry.
fn bench_schema(c: &mut Criterion, schema: KeplerSchema, sizes: &[FleetShape]) {
    let mut group = c.benchmark_group(format!("snapshot_{schema}"));
    // One pass at 5 000 nodes takes ~a second: flat sampling keeps it to 10 passes.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for &shape in sizes {
        let rec = Recording::kepler(schema, shape);
        let fetched = match rec.parse() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("recorded responses do not parse: {e}");
                std::process::exit(1);
            }
        };
        eprintln!(
            "Kepler {schema}, {}: {} queries, {} series, {:.1} MB of JSON",
            shape.id(),
            rec.responses.len(),
            rec.series(),
            rec.body_bytes() as f64 / 1e6
        );
        group.throughput(Throughput::Elements(rec.series() as u64));
        group.bench_with_input(BenchmarkId::new("from_json", shape.id()), &rec, |b, rec| {
            b.iter_with_large_drop(|| black_box(rec).snapshot())
        });
        group.bench_with_input(BenchmarkId::new("parse", shape.id()), &rec, |b, rec| {
            b.iter_with_large_drop(|| black_box(rec).parse())
        });
        group.bench_with_input(
            BenchmarkId::new("assemble", shape.id()),
            &fetched,
            |b, fetched| b.iter_with_large_drop(|| rec.assemble(black_box(fetched))),
        );
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_schema(
        &mut c,
        KeplerSchema::V010,
        &[FleetShape::SMALL, FleetShape::ACCEPTANCE],
    );
    bench_schema(&mut c, KeplerSchema::V07, &[FleetShape::ACCEPTANCE]);
    c.final_summary();
}
