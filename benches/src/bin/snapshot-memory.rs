//! Memory of snapshot assembly: body sizes, parsed responses and the built snapshot.
//!
//! Usage: `cargo run --release -p benches --bin snapshot-memory -- [v0.10|v0.7] [NODES] [PODS]`
//! (defaults: v0.10, 5 000 nodes, 100 000 pods). Run one schema per process: freed
//! memory stays in the allocator, so figures from a second run in the same process would
//! be wrong.
//!
//! Reads `VmRSS` (resident now) and `VmHWM` (peak resident) from `/proc/self/status`, and
//! resets the peak between phases by writing `5` to `/proc/self/clear_refs`. Retained
//! sizes are RSS deltas across a phase; peaks are `VmHWM` minus RSS at the phase start.
//! Heap estimates (`benches::heap`) count the structures' own bytes without allocator
//! overhead, as a cross-check.

use std::process::ExitCode;

use benches::{FleetShape, Recording, heap};
use kepler_client::KeplerSchema;

const MIB: f64 = 1024.0 * 1024.0;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn rss() -> u64 {
    status_bytes("VmRSS").unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS; false when the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn delta(after: u64, before: u64) -> String {
    format!("{:+.1} MiB", (after as f64 - before as f64) / MIB)
}

/// Runs one phase and prints RSS retained by it and its peak above the phase start.
fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let before = rss();
    let peak_reset = reset_peak();
    let out = f();
    let after = rss();
    let peak = status_bytes("VmHWM").unwrap_or(0);
    if peak_reset {
        println!(
            "{name:<34} RSS {} (retained {}), peak {} above phase start",
            mib(after),
            delta(after, before),
            delta(peak, before)
        );
    } else {
        println!(
            "{name:<34} RSS {} (retained {}), peak n/a (clear_refs not writable)",
            mib(after),
            delta(after, before)
        );
    }
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let schema = match args.first().map(|s| s.parse::<KeplerSchema>()) {
        None => KeplerSchema::V010,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let number = |i: usize, default: usize| match args.get(i) {
        None => Ok(default),
        Some(s) => s.parse::<usize>().map_err(|e| format!("`{s}`: {e}")),
    };
    let shape = match (
        number(1, FleetShape::ACCEPTANCE.nodes),
        number(2, FleetShape::ACCEPTANCE.pods),
    ) {
        (Ok(n), Ok(p)) => FleetShape::new(n, p),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "Kepler {schema}: {} nodes ({} sockets each), {} pods, {} clusters",
        shape.nodes, shape.sockets, shape.pods, shape.clusters
    );
    println!("{:<34} RSS {}", "start", mib(rss()));
    let rec = phase("record response bodies", || {
        Recording::kepler(schema, shape)
    });
    for r in &rec.responses {
        println!(
            "  {:<60} {:>7} series {:>8.2} MB",
            r.query,
            r.series,
            r.body.len() as f64 / 1e6
        );
    }
    println!(
        "  {:<60} {:>7} series {:>8.2} MB",
        "all bodies",
        rec.series(),
        rec.body_bytes() as f64 / 1e6
    );

    let fetched = match phase("parse bodies (kept)", || rec.parse()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let snapshot = phase("assemble snapshot", || rec.assemble(&fetched));
    println!(
        "  snapshot: {} clusters, {} nodes, {} pods",
        snapshot.clusters.len(),
        snapshot.node_count(),
        snapshot.pod_count()
    );
    println!(
        "heap estimate: parsed responses {}, snapshot {}",
        mib(heap::parsed(&fetched) as u64),
        mib(heap::snapshot(&snapshot) as u64)
    );
    phase("drop parsed responses", || drop(fetched));
    phase("drop snapshot", || drop(snapshot));
    let peak = status_bytes("VmHWM").unwrap_or(0);
    println!("{:<34} RSS {}, VmHWM {}", "end", mib(rss()), mib(peak));
    ExitCode::SUCCESS
}
