//! `ecoplace ocm-scores`: the OCM `AddOnPlacementScore` publisher alone, with `/metrics`,
//! `/healthz` and `/readyz` (ready while telemetry has a snapshot).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kepler_client::Refresher;
use kepler_client::refresher::Clock;
use prometheus::Registry;

use crate::fleet::metrics::{registered, telemetry_age_gauge};
use crate::preflight;
use crate::runtime::OcmScores;
use crate::shutdown::{RELEASE_TIMEOUT, Shutdown};

/// Arguments of `ecoplace ocm-scores`.
#[derive(Debug, Clone, clap::Args)]
pub struct OcmScoresArgs {
    /// Configuration file (ecoplace.yaml); `telemetry.prometheus` and a carbon source needed.
    #[arg(long)]
    pub config: PathBuf,
    /// Listen address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8888")]
    pub listen: String,
}

/// Runs the publisher until SIGTERM or SIGINT, then stops it and releases the Lease.
pub async fn run(args: OcmScoresArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals().context("installing the SIGTERM/SIGINT handlers")?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = Arc::new(preflight::load(&args.config, preflight::Verb::OcmScores)?);
    let OcmScores {
        refresher,
        publishing,
        registry,
        clock,
        carbon_refresh: _carbon_refresh,
    } = OcmScores::start(config).await?;
    let app = router(refresher, registry, clock).context("registering metrics")?;
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen `{}`", args.listen))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("ecoplace ocm-scores: metrics on http://{addr}/metrics");
    // The Lease is released as soon as the signal comes, while the listener drains.
    let stopping = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.requested().await;
            publishing.stop(shutdown.grace(), RELEASE_TIMEOUT).await;
        })
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.signal());
    shutdown.drain("metrics", server).await?;
    let _ = stopping.await;
    tracing::info!(signal = shutdown.reason(), "ecoplace ocm-scores stopped");
    Ok(())
}

/// `/healthz`, `/readyz` (ready while telemetry has a snapshot) and `/metrics` rendering
/// `registry`, where `ecoplace_telemetry_age_seconds` (registered here) is the snapshot's
/// age at each scrape by `clock` (−1: no snapshot).
pub fn router(
    refresher: Arc<Refresher>,
    registry: Registry,
    clock: Clock,
) -> Result<Router, prometheus::Error> {
    let telemetry_age = registered(&registry, telemetry_age_gauge()?)?;
    let ready = Arc::clone(&refresher);
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.latest().snapshot.is_some();
                async move {
                    if ready {
                        (StatusCode::OK, "telemetry: ok\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "telemetry: no snapshot yet\n",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let age = refresher
                    .latest()
                    .snapshot
                    .as_ref()
                    .map_or(-1.0, |s| s.age_s(clock()));
                telemetry_age.set(age);
                let reply = crate::server::metrics_response(&registry);
                async move { reply }
            }),
        ))
}
