//! `ecoplace serve`: the kube-scheduler extender.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use chrono::{Datelike, TimeZone, Utc};
use kepler_client::carbon::CarbonCurves;
use kepler_client::latency::LatencyMatrix;
use kepler_client::refresher::Clock;
use kepler_client::{PrometheusSource, Refresher, SimulatedFleet, TelemetrySource};
use optimizer::power::{CurvePowerModel, FallbackPowerModel};

use crate::config::{Config, NodeProfile};
use crate::extender::Extender;
use crate::extender::fleet::FleetView;
use crate::extender::sources::{DemoNodes, Inputs, KubeNodes, NodeSource, build_view, run_updater};
use crate::server::{self, metrics::Metrics};

/// Arguments of `ecoplace serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (ecoplace.yaml).
    #[arg(long, required_unless_present = "demo")]
    pub config: Option<PathBuf>,
    /// Listen address (overrides extender.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve the embedded simulated fleet: no Prometheus, no apiserver needed.
    #[arg(long)]
    pub demo: bool,
}

/// Runs the server until interrupted.
pub async fn run(args: ServeArgs) -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = &args.listen {
        config.extender.listen = l.clone();
    }
    let (config, nodes, source, carbon, clock) = if args.demo {
        demo(config)?
    } else {
        live(config).await?
    };
    let config = Arc::new(config);
    let refresher = Arc::new(Refresher::spawn_with_clock(
        source,
        Duration::from_secs_f64(config.telemetry.refresh_seconds),
        clock.clone(),
    ));
    refresher.first_attempt().await;
    let power = Arc::new(FallbackPowerModel::from_path(
        config.power.onnx_model.as_deref(),
        CurvePowerModel::new(),
    ));
    if let Some(e) = power.last_error() {
        tracing::warn!("power model: {e}; using fitted curves");
    }
    let inputs = Inputs {
        nodes,
        refresher,
        carbon,
        config: Arc::clone(&config),
        clock: clock.clone(),
    };
    let extender = Arc::new(Extender::new(
        FleetView::empty(Arc::clone(&config), clock()),
        power,
        Metrics::new().context("registering metrics")?,
        Duration::from_millis(config.extender.deadline_ms),
    ));
    extender.publish(build_view(&inputs).await);
    tokio::spawn(run_updater(
        Arc::clone(&extender),
        inputs,
        Duration::from_secs(1),
    ));

    let app = server::router(
        Arc::clone(&extender),
        &config.extender.prefix,
        config.extender.max_body_bytes,
    );
    let addr: SocketAddr = config
        .extender
        .listen
        .parse()
        .with_context(|| format!("extender.listen `{}`", config.extender.listen))?;
    match &config.extender.tls {
        Some(tls) => {
            let rustls =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
                    .await
                    .with_context(|| {
                        format!(
                            "extender.tls: {} / {}",
                            tls.cert_file.display(),
                            tls.key_file.display()
                        )
                    })?;
            eprintln!(
                "ecoplace extender on https://{addr}{}",
                config.extender.prefix
            );
            axum_server::bind_rustls(addr, rustls)
                .serve(app.into_make_service())
                .await?;
        }
        None => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?
                .tap_io(|s| {
                    let _ = s.set_nodelay(true);
                });
            eprintln!(
                "ecoplace extender on http://{addr}{}",
                config.extender.prefix
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(())
}

type Parts = (
    Config,
    Arc<dyn NodeSource>,
    Arc<dyn TelemetrySource>,
    Arc<dyn kepler_client::carbon::CarbonIntensitySource>,
    Clock,
);

/// The demo: the simulated fleet's nodes, telemetry and 2020 carbon curves, on a clock that
/// runs now's date and time in 2020 (inside the embedded carbon data).
fn demo(mut config: Config) -> Result<Parts> {
    let fleet = SimulatedFleet::embedded(42);
    let matrix = LatencyMatrix::embedded();
    for c in &fleet.clusters {
        config
            .topology
            .carbon_zones
            .insert(c.name.clone(), c.carbon_zone.clone());
        let row = matrix
            .regions()
            .filter_map(|r| matrix.latency_ms(r, &c.name).map(|ms| (r.to_string(), ms)))
            .collect();
        config.topology.latency_ms.insert(c.name.clone(), row);
    }
    for t in &fleet.node_types {
        config.power.node_types.insert(
            t.name.clone(),
            NodeProfile {
                idle_watts: t.curve.watts(0.0),
                max_watts: t.curve.watts(1.0),
                power_cap_watts: None,
            },
        );
    }
    let nodes: Arc<dyn NodeSource> = Arc::new(DemoNodes::new(&fleet, &config));
    let carbon = Arc::new(CarbonCurves::embedded_2020().context("embedded carbon curves")?);
    let clock: Clock = Arc::new(|| {
        let now = Utc::now();
        let day = now.ordinal0().min(364);
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .map(|start| {
                start
                    + chrono::Duration::days(i64::from(day))
                    + (now
                        - now
                            .date_naive()
                            .and_hms_opt(0, 0, 0)
                            .map(|m| m.and_utc())
                            .unwrap_or(now))
            })
            .unwrap_or(now)
    });
    Ok((config, nodes, Arc::new(fleet), carbon, clock))
}

/// Production: Prometheus/Thanos telemetry, a Kubernetes watch, configured carbon.
async fn live(config: Config) -> Result<Parts> {
    let prom = config
        .telemetry
        .prometheus
        .clone()
        .context("telemetry.prometheus: required without --demo")?;
    let url = prom.endpoint.url.clone();
    let source =
        PrometheusSource::new(prom).with_context(|| format!("telemetry.prometheus `{url}`"))?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes apiserver (in-cluster or KUBECONFIG)")?;
    let nodes: Arc<dyn NodeSource> = Arc::new(KubeNodes::spawn(client));
    let carbon = Arc::new(CarbonCurves::embedded_2020().context("embedded carbon curves")?);
    Ok((config, nodes, Arc::new(source), carbon, Arc::new(Utc::now)))
}
