//! Assembling a running extender from its parts: node facts, telemetry, carbon, a clock
//! and the configuration — the demo fleet's, or a live cluster's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use chrono::{Datelike, TimeZone, Utc};
use kepler_client::carbon::{CarbonCurves, CarbonIntensitySource, PrometheusCarbon};
use kepler_client::latency::LatencyMatrix;
use kepler_client::refresher::Clock;
use kepler_client::{PrometheusSource, Refresher, SimulatedFleet, TelemetrySource};
use optimizer::power::{CurvePowerModel, FallbackPowerModel};

use crate::config::{Config, NodeProfile};
use crate::extender::Extender;
use crate::extender::events::{EventOptions, EventSink, KubeEvents, NoEvents};
use crate::extender::fleet::FleetView;
use crate::extender::sources::{DemoNodes, Inputs, KubeNodes, NodeSource, build_view, run_updater};
use crate::placement::Placer;
use crate::server::{self, metrics::Metrics};

/// Everything an extender reads, before it starts.
pub struct Parts {
    /// Configuration (the demo fills in topology and power profiles).
    pub config: Config,
    /// Node facts: a watch, the demo fleet, or a test's fixture.
    pub nodes: Arc<dyn NodeSource>,
    /// Kepler telemetry.
    pub telemetry: Arc<dyn TelemetrySource>,
    /// Grid carbon intensity.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// The clock views and snapshots are stamped with.
    pub clock: Clock,
    /// Where pod events go (Kubernetes Events, or nowhere).
    pub events: Arc<dyn EventSink>,
    /// The service's metrics (shared with the event writer).
    pub metrics: Metrics,
}

/// A started extender: its state, and the configuration it runs with.
#[derive(Debug, Clone)]
pub struct Service {
    /// The extender (shared with the HTTP handlers and the view updater).
    pub extender: Arc<Extender>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The telemetry refresher (shared with the OCM score publisher).
    pub refresher: Arc<Refresher>,
}

impl Service {
    /// Starts telemetry refreshes and the view updater (every `view_every`), waits for the
    /// first telemetry attempt and publishes the first view.
    pub async fn start(parts: Parts, view_every: Duration) -> Result<Self> {
        let config = Arc::new(parts.config);
        let refresher = Arc::new(Refresher::spawn_with_clock(
            parts.telemetry,
            Duration::from_secs_f64(config.telemetry.refresh_seconds),
            parts.clock.clone(),
        ));
        refresher.first_attempt().await;
        let power = power_model(&config);
        let inputs = Inputs {
            nodes: parts.nodes,
            refresher: Arc::clone(&refresher),
            carbon: parts.carbon,
            config: Arc::clone(&config),
            clock: parts.clock.clone(),
            carbon_logged: Mutex::default(),
        };
        let extender = Arc::new(Extender::new(
            FleetView::empty(Arc::clone(&config), (parts.clock)()),
            power,
            parts.metrics,
            parts.events,
            Duration::from_millis(config.extender.deadline_ms),
        ));
        extender.publish(build_view(&inputs).await);
        tokio::spawn(run_updater(Arc::clone(&extender), inputs, view_every));
        Ok(Self {
            extender,
            config,
            refresher,
        })
    }

    /// The HTTP routes: the extender's and the placement API's.
    pub fn router(&self) -> Router {
        server::router(
            Arc::clone(&self.extender),
            &self.config.extender.prefix,
            self.config.extender.max_body_bytes,
        )
        .merge(server::placement::router(
            Arc::new(Placer::new(self.config.placement.clone())),
            self.config.extender.max_body_bytes,
        ))
    }
}

/// The node power model the configuration names (`power.onnxModel`), falling back to the
/// fitted curves when it is absent or cannot be loaded (with a warning saying why).
pub fn power_model(config: &Config) -> Arc<FallbackPowerModel> {
    let power = Arc::new(FallbackPowerModel::from_path(
        config.power.onnx_model.as_deref(),
        CurvePowerModel::new(),
    ));
    if let Some(e) = power.last_error() {
        tracing::warn!("power model: {e}; using fitted curves");
    }
    power
}

/// The demo: the simulated fleet's nodes, telemetry and 2020 carbon curves, on a clock that
/// runs today's day of the year and time of day in 2020 (inside the embedded carbon data).
pub fn demo(config: Config) -> Result<Parts> {
    let fleet = SimulatedFleet::embedded(42);
    let config = demo_config(config, &fleet);
    let nodes: Arc<dyn NodeSource> = Arc::new(DemoNodes::new(&fleet, &config));
    let carbon = Arc::new(CarbonCurves::embedded_2020().context("embedded carbon curves")?);
    let clock: Clock = Arc::new(|| {
        let now = Utc::now();
        let day = now.ordinal0().min(364);
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |m| m.and_utc());
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .map_or(now, |start| {
                start + chrono::Duration::days(i64::from(day)) + (now - midnight)
            })
    });
    Ok(Parts {
        config,
        nodes,
        telemetry: Arc::new(fleet),
        carbon,
        clock,
        events: Arc::new(NoEvents),
        metrics: Metrics::new().context("registering metrics")?,
    })
}

/// `config` with the demo fleet's topology (carbon zones, latency from the embedded
/// matrix's user regions) and node power profiles filled in.
pub fn demo_config(mut config: Config, fleet: &SimulatedFleet) -> Config {
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
    config
}

/// Production: Prometheus/Thanos telemetry, a Kubernetes watch, configured carbon sources.
pub async fn live(config: Config) -> Result<Parts> {
    let (source, carbon) = sources(&config, "without --demo")?;
    let kube_config = kube::Config::infer()
        .await
        .context("Kubernetes client configuration (in-cluster or KUBECONFIG)")?;
    let client = kube::Client::try_from(kube_config.clone())
        .context("connecting to the Kubernetes apiserver (in-cluster or KUBECONFIG)")?;
    let metrics = Metrics::new().context("registering metrics")?;
    let events: Arc<dyn EventSink> = if config.events.enabled {
        Arc::new(KubeEvents::spawn(
            client.clone(),
            EventOptions::from_config(&config.events),
            metrics.clone(),
        ))
    } else {
        Arc::new(NoEvents)
    };
    let nodes: Arc<dyn NodeSource> = Arc::new(
        KubeNodes::spawn(kube_config, &metrics).context("starting the node and pod watches")?,
    );
    Ok(Parts {
        config,
        nodes,
        telemetry: Arc::new(source),
        carbon,
        clock: Arc::new(Utc::now),
        events,
        metrics,
    })
}

/// The Prometheus/Thanos telemetry source and the carbon source the configuration
/// describes; `when` says when `telemetry.prometheus` is required (for the error).
pub fn sources(
    config: &Config,
    when: &str,
) -> Result<(PrometheusSource, Arc<dyn CarbonIntensitySource>)> {
    let prom = config
        .telemetry
        .prometheus
        .clone()
        .with_context(|| format!("telemetry.prometheus: required {when}"))?;
    let url = kepler_client::prom::redact_url(&prom.endpoint.url);
    let source =
        PrometheusSource::new(prom).with_context(|| format!("telemetry.prometheus `{url}`"))?;
    let carbon = carbon(config, &source)?;
    Ok((source, carbon))
}

/// The curves of `carbon`'s files and constants (everything but `carbon.prometheus`).
pub fn curves(carbon: &crate::config::CarbonConfig) -> Result<kepler_client::carbon::CarbonCurves> {
    Ok(CarbonCurves::load(
        carbon.embedded2020,
        &carbon.forecast_files,
        carbon.csv_files.iter().map(|(z, f)| (z.clone(), f.clone())),
        carbon.static_g_per_kwh.iter().map(|(z, g)| (z.clone(), *g)),
    )?)
}

/// The carbon source `config.carbon` describes; a Prometheus metric reuses `source`'s
/// connection.
pub fn carbon(
    config: &Config,
    source: &PrometheusSource,
) -> Result<Arc<dyn CarbonIntensitySource>> {
    let c = &config.carbon;
    if let Some(p) = &c.prometheus {
        let metric = PrometheusCarbon::new(source.client().clone(), p.clone())
            .context("carbon.prometheus")?;
        return Ok(Arc::new(metric));
    }
    let curves = curves(c).context("carbon: loading curves")?;
    if curves.zones().next().is_none() {
        tracing::warn!(
            "carbon: no source configured; the extender fails open (carbon_missing) until one is"
        );
    }
    Ok(Arc::new(curves))
}
