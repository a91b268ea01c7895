//! `ecoplace carbon-window`: the carbon-window controller alone (pods gated with
//! `ecoplace.io/carbon-window` are released in their cleanest forecast window), with
//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;

use crate::preflight;
use crate::runtime::CarbonWindow;
use crate::shutdown::{RELEASE_TIMEOUT, Shutdown};

/// Arguments of `ecoplace carbon-window`.
#[derive(Debug, Clone, clap::Args)]
pub struct CarbonWindowArgs {
    /// Configuration file (ecoplace.yaml); the `carbonWindow` section and a carbon source
    /// with a forecast.
    #[arg(long)]
    pub config: PathBuf,
    /// Listen address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8888")]
    pub listen: String,
}

/// Runs the controller until SIGTERM or SIGINT, then stops it and releases the Lease.
pub async fn run(args: CarbonWindowArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals().context("installing the SIGTERM/SIGINT handlers")?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = Arc::new(preflight::load(
        &args.config,
        preflight::Verb::CarbonWindow,
    )?);
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen `{}`", args.listen))?;
    let CarbonWindow {
        gating,
        registry,
        carbon: _carbon,
        carbon_refresh: _carbon_refresh,
    } = CarbonWindow::start(config).await?;
    let metrics = registry.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "carbon-window: ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let reply = crate::server::metrics_response(&metrics);
                async move { reply }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("ecoplace carbon-window: metrics on http://{addr}/metrics");
    let stopping = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.requested().await;
            gating.stop(shutdown.grace(), RELEASE_TIMEOUT).await;
        })
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.signal());
    shutdown.drain("metrics", server).await?;
    let _ = stopping.await;
    tracing::info!(signal = shutdown.reason(), "ecoplace carbon-window stopped");
    Ok(())
}
