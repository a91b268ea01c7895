//! The demo extender fed by a real Prometheus, for `scripts/reliability`.
//!
//! `reliability-server serve PROM_YML PROM_URL ADDR` serves the simulated fleet as live
//! Kepler exporters, writes a `prometheus.yml` scraping them (every second) to PROM_YML,
//! and serves the extender on ADDR with the demo's node facts and telemetry read from
//! PROM_URL (which the script points at Prometheus through a proxy it can break). Refreshes
//! every second; telemetry is stale after `STALE_S` seconds (env, default 4).
//! `reliability-server names-body K` prints a prioritize body with K node names: the
//! fleet's nodes, then names outside it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt;
use chrono::Utc;
use kepler_client::{KeplerSchema, PrometheusSource, SimulatedFleet};
use scheduler::config::Config;
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tests::kepler::serve_fleet;
use tests::prometheus::render_config;

const NAMES: &str = include_str!("../../../scheduler/tests/fixtures/args-names.json");

fn config(prom_url: &str, stale_s: f64) -> Result<Config> {
    tests::extender::extender_config(prom_url, 1.0, stale_s)
}

async fn serve(prom_yml: &str, prom_url: &str, addr: &str) -> Result<()> {
    let stale_s: f64 = match std::env::var("STALE_S") {
        Ok(s) => s.parse().context("STALE_S must be a number of seconds")?,
        Err(_) => 4.0,
    };
    let fleet = Arc::new(SimulatedFleet::embedded(42));
    let exporters = serve_fleet(fleet, KeplerSchema::V010).await?;
    std::fs::write(
        prom_yml,
        render_config(Duration::from_secs(1), &exporters.jobs)?,
    )
    .with_context(|| format!("writing {prom_yml}"))?;

    let mut parts = runtime::demo(config(prom_url, stale_s)?)?;
    let prom = parts
        .config
        .telemetry
        .prometheus
        .clone()
        .context("telemetry.prometheus")?;
    let source = PrometheusSource::new(prom)?;
    parts.carbon = runtime::carbon(&parts.config, Some(&source))?;
    parts.telemetry = Arc::new(source);
    parts.clock = Arc::new(Utc::now);
    let svc = Service::start(parts, Duration::from_millis(500)).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?
        .tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
    eprintln!("extender on http://{addr}/scheduler, telemetry from {prom_url}");
    axum::serve(listener, svc.router()).await?;
    drop(exporters);
    Ok(())
}

fn names_body(k: usize) -> Result<Vec<u8>> {
    let fleet = SimulatedFleet::embedded(42);
    let mut names: Vec<String> = fleet.nodes.iter().map(|n| n.name.clone()).collect();
    names.truncate(k);
    let known = names.len();
    names.extend((known..k).map(|i| format!("outside-{i}")));
    let mut args: Value = serde_json::from_str(NAMES).context("names fixture")?;
    args["NodeNames"] = json!(names);
    Ok(serde_json::to_vec(&args)?)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_init();
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, what: &str| args.get(i).with_context(|| format!("missing {what}"));
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(arg(2, "PROM_YML")?, arg(3, "PROM_URL")?, arg(4, "ADDR")?).await,
        Some("names-body") => {
            let k = arg(2, "K")?.parse().context("K must be a number")?;
            std::io::stdout().write_all(&names_body(k)?)?;
            Ok(())
        }
        _ => bail!("usage: reliability-server serve PROM_YML PROM_URL ADDR | names-body K"),
    }
}

/// Warnings (telemetry refresh failures) to stderr, as `ecoplace serve` logs them.
fn tracing_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
