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

use crate::ocm::{self, metrics::OcmMetrics};
use crate::preflight;
use crate::server::metrics::Metrics;
use crate::server::service;

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

/// Runs the publisher until interrupted.
pub async fn run(args: OcmScoresArgs) -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = Arc::new(preflight::load(&args.config, preflight::Verb::OcmScores)?);
    let (source, carbon) = service::sources(&config, "for the score publisher")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the hub apiserver (in-cluster or KUBECONFIG)")?;
    let refresher = Arc::new(Refresher::spawn(
        Arc::new(source),
        Duration::from_secs_f64(config.telemetry.refresh_seconds),
    ));
    refresher.first_attempt().await;
    let metrics = Metrics::new().context("registering metrics")?;
    let ocm_metrics =
        OcmMetrics::register(metrics.registry(), &metrics.carbon).context("registering metrics")?;
    let _leadership = ocm::spawn(ocm::Inputs {
        client,
        refresher: Arc::clone(&refresher),
        carbon,
        config: Arc::clone(&config),
        clock: Arc::new(chrono::Utc::now),
        metrics: ocm_metrics,
    })
    .await?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = refresher.latest().snapshot.is_some();
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
                let body = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        );
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen `{}`", args.listen))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("ecoplace ocm-scores: metrics on http://{addr}/metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
