//! The extender over HTTP with a synthetic node cache, for `scripts/load-extender`.
//!
//! `extender-load-server serve NODES ADDR [VIEW_EVERY_S]` serves the demo extender with NODES
//! cached nodes through `Service::start` and `Service::router` (as `ecoplace serve` does),
//! rebuilding its view every VIEW_EVERY_S seconds (default 1, as `ecoplace serve`);
//! `extender-load-server names-body K NODES` and `extender-load-server nodes-body K [IMAGES]`
//! print kube-scheduler request bodies to stdout (IMAGES: entries in each node's
//! `status.images`, default 0); `extender-load-server latency CALLS [FILTER]`
//! times CALLS server-side calls per scenario whose name contains FILTER, one after
//! another (as kube-scheduler's single scheduling loop makes them), and prints exact
//! percentiles.

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt;
use benches::extender::{names_body, nodes_body, nodes_body_with_images, service, service_every};
use scheduler::config::Config;
use scheduler::extender::Verb;
use std::io::Write;
use std::time::{Duration, Instant};

/// Times `calls` calls of `Extender::handle` (decode, decide, encode, the hop to a blocking
/// thread under the deadline: the HTTP handler's whole body) per scenario.
async fn latency(calls: usize, only: &str) -> Result<()> {
    if calls == 0 {
        bail!("CALLS must be at least 1");
    }
    let scenarios: [(&str, usize, Vec<Verb>, Vec<u8>); 3] = [
        (
            "prioritize 5000 names, 5000 cached",
            5_000,
            vec![Verb::Prioritize],
            names_body(5_000, 5_000)?,
        ),
        (
            "prioritize 230 names, 500 cached",
            500,
            vec![Verb::Prioritize],
            names_body(230, 500)?,
        ),
        (
            "filter+prioritize 500 full Nodes",
            500,
            vec![Verb::Filter, Verb::Prioritize],
            nodes_body(500)?,
        ),
    ];
    for (name, cache, verbs, body) in scenarios {
        if !name.contains(only) {
            continue;
        }
        let svc = service(Config::default(), cache).await?;
        let ext = svc.extender;
        let body = axum::body::Bytes::from(body);
        let mut took = Vec::with_capacity(calls);
        for i in 0..calls + calls / 10 {
            let t = Instant::now();
            for &verb in &verbs {
                if let Err(e) = ext.handle(verb, body.clone()).await {
                    bail!("{name}: {}", e.error);
                }
            }
            // The first tenth warms caches and the allocator up and is not counted.
            if i >= calls / 10 {
                took.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        took.sort_by(f64::total_cmp);
        let q = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
        let mean = took.iter().sum::<f64>() / took.len() as f64;
        println!(
            "{name}: {} calls, mean {mean:.0} µs, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
            took.len(),
            q(0.50),
            q(0.90),
            q(0.99),
            q(0.999),
            took[took.len() - 1]
        );
    }
    Ok(())
}

fn arg(args: &[String], i: usize, what: &str) -> Result<usize> {
    args.get(i)
        .with_context(|| format!("missing {what}"))?
        .parse()
        .with_context(|| format!("{what} must be a number"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let nodes = arg(&args, 2, "NODES")?;
            let addr = args.get(3).context("missing ADDR")?;
            let every: f64 = match args.get(4) {
                Some(s) => s
                    .parse()
                    .context("VIEW_EVERY_S must be a number of seconds")?,
                None => 1.0,
            };
            let every = Duration::try_from_secs_f64(every)
                .ok()
                .filter(|d| !d.is_zero())
                .context("VIEW_EVERY_S must be positive")?;
            let svc = service_every(Config::default(), nodes, every).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?
                .tap_io(|s| {
                    let _ = s.set_nodelay(true);
                });
            eprintln!(
                "extender with {nodes} cached nodes on http://{addr}/scheduler, view every {every:?}"
            );
            axum::serve(listener, svc.router()).await?;
        }
        Some("names-body") => {
            let body = names_body(arg(&args, 2, "K")?, arg(&args, 3, "NODES")?)?;
            std::io::stdout().write_all(&body)?;
        }
        Some("nodes-body") => {
            let images = if args.len() > 3 {
                arg(&args, 3, "IMAGES")?
            } else {
                0
            };
            let body = nodes_body_with_images(arg(&args, 2, "K")?, images)?;
            std::io::stdout().write_all(&body)?;
        }
        Some("latency") => {
            let only = args.get(3).map(String::as_str).unwrap_or("");
            latency(arg(&args, 2, "CALLS")?, only).await?
        }
        _ => bail!(
            "usage: extender-load-server serve NODES ADDR [VIEW_EVERY_S] | names-body K NODES | nodes-body K [IMAGES] | latency CALLS [FILTER]"
        ),
    }
    Ok(())
}
