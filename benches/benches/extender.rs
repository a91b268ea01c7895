//! Server-side extender latency: decode, decide (score_targets on the cached view) and
//! encode, through `Extender::handle` (the HTTP handler's whole body, including the hop to
//! a blocking thread under the deadline).
//!
//! Acceptance: prioritize with 5 000 `NodeNames` ≤ 1 ms (p99, see scripts/load-extender for
//! percentiles over HTTP); filter + prioritize with 500 full Node objects ≤ 5 ms.
//! Run: `cargo bench -p benches --bench extender`.

use std::hint::black_box;
use std::sync::Arc;

use anyhow::Result;
use axum::body::Bytes;
use benches::extender::{names_body, nodes_body, service};
use criterion::{Criterion, criterion_group, criterion_main};
use scheduler::config::Config;
use scheduler::extender::{Extender, Verb};
use tokio::runtime::Runtime;

/// (label, extender, body) cases.
type Case = (String, Arc<Extender>, Bytes);

fn cases(rt: &Runtime) -> Result<(Vec<Case>, Case)> {
    let mut names = Vec::new();
    for (cache, k) in [(5_000, 5_000), (5_000, 500), (500, 230)] {
        let svc = rt.block_on(service(Config::default(), cache))?;
        let body = Bytes::from(names_body(k, cache)?);
        names.push((
            format!("prioritize/{k}-names/{cache}-cache"),
            svc.extender,
            body,
        ));
    }
    let svc = rt.block_on(service(Config::default(), 500))?;
    let nodes = (
        "filter+prioritize/500-nodes".to_string(),
        svc.extender,
        Bytes::from(nodes_body(500)?),
    );
    Ok((names, nodes))
}

fn extender(c: &mut Criterion) {
    let setup = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| cases(&rt).map(|c| (rt, c)));
    let (rt, (names, nodes)) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("extender bench setup failed: {e:#}");
            std::process::exit(1);
        }
    };
    let mut group = c.benchmark_group("extender");
    for (label, ext, body) in names {
        group.bench_function(label, |b| {
            b.iter(|| rt.block_on(ext.handle(Verb::Prioritize, black_box(body.clone()))))
        });
    }
    let (label, ext, body) = nodes;
    group.bench_function(label, |b| {
        b.iter(|| {
            let f = rt.block_on(ext.handle(Verb::Filter, black_box(body.clone())));
            let p = rt.block_on(ext.handle(Verb::Prioritize, black_box(body.clone())));
            (f, p)
        })
    });
    group.finish();
}

criterion_group!(benches, extender);
criterion_main!(benches);
