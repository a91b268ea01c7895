//! `ecoplace ocm-scores`: the OCM `AddOnPlacementScore` publisher alone, with `/metrics`,
//! `/healthz` and `/readyz` (ready while telemetry has a snapshot).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kepler_client::Refresher;
use kepler_client::refresher::Clock;

use crate::ocm::{self, metrics::OcmMetrics};
use crate::preflight;
use crate::server::metrics::Metrics;
use crate::server::service;
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
    let (source, carbon) = service::sources(&config, "for the score publisher")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the hub apiserver (in-cluster or KUBECONFIG)")?;
    let clock: Clock = Arc::new(chrono::Utc::now);
    let refresher = Arc::new(Refresher::spawn_with_clock(
        Arc::new(source),
        Duration::from_secs_f64(config.telemetry.refresh_seconds),
        clock.clone(),
    ));
    refresher.first_attempt().await;
    let metrics = Metrics::new().context("registering metrics")?;
    let ocm_metrics =
        OcmMetrics::register(metrics.registry(), &metrics.carbon).context("registering metrics")?;
    let publishing = ocm::spawn(ocm::Inputs {
        client,
        refresher: Arc::clone(&refresher),
        carbon,
        config: Arc::clone(&config),
        clock: clock.clone(),
        metrics: ocm_metrics,
    })
    .await?;
    let app = router(refresher, metrics, clock);
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

/// `/healthz`, `/readyz` (ready while telemetry has a snapshot) and `/metrics`, where
/// `ecoplace_telemetry_age_seconds` is the snapshot's age at each scrape by `clock` (−1:
/// no snapshot).
pub fn router(refresher: Arc<Refresher>, metrics: Metrics, clock: Clock) -> Router {
    let ready = Arc::clone(&refresher);
    Router::new()
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
                metrics.telemetry_age.set(age);
                let body = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        )
}
