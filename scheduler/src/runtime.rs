//! Start-up, in one place: the sources (node facts, telemetry, carbon, a clock — the demo
//! fleet's or a live cluster's), the power model, the fleet view and its updater, the
//! extender, the OCM publisher and the one metrics registry, for `serve`, `ocm-scores` and
//! `rebalance`. Each component gets its narrow settings here, built once from `Config`.
//! It may import every room but `commands`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use chrono::{Datelike, TimeZone, Utc};
use kepler_client::carbon::live::{LiveCarbon, RefreshTask};
use kepler_client::carbon::{CarbonCurves, CarbonError, CarbonIntensitySource, PrometheusCarbon};
use kepler_client::latency::LatencyMatrix;
use kepler_client::refresher::Clock;
use kepler_client::{PrometheusSource, Refresher, SimulatedFleet, TelemetrySource};
use optimizer::power::{CurvePowerModel, FallbackPowerModel};

use prometheus::Registry;

use crate::carbon_window::Gating;
use crate::carbon_window::controller::WindowSettings;
use crate::carbon_window::metrics::WindowMetrics;
use crate::config::{Config, NodeProfile};
use crate::extender::events::{EventOptions, EventSink, KubeEvents, NoEvents};
use crate::extender::metrics::{EventMetrics, ExtenderMetrics};
use crate::extender::{Extender, ExtenderSettings};
use crate::fleet::{
    CarbonGauges, DemoNodes, FleetView, Inputs, KubeNodes, LiveCarbonMetrics, NodeSource,
    ViewMetrics, ViewSettings, WatchMetrics, run_updater, update,
};
use crate::ocm::metrics::OcmMetrics;
use crate::ocm::{OcmSettings, Publishing};
use crate::placement::Placer;
use crate::server;

/// Everything an extender reads, before it starts.
pub struct Parts {
    /// Configuration (the demo fills in topology and power profiles).
    pub config: Config,
    /// Node facts: a watch, the demo fleet, or a test's fixture.
    pub nodes: Arc<dyn NodeSource>,
    /// Kepler telemetry.
    pub telemetry: Arc<dyn TelemetrySource>,
    /// Grid carbon intensity.
    pub carbon: Carbon,
    /// The clock views and snapshots are stamped with.
    pub clock: Clock,
    /// Where pod events go (Kubernetes Events, or nowhere).
    pub events: Arc<dyn EventSink>,
    /// The one registry every component registers its metrics into (`/metrics` renders
    /// it); the watches' and the event writer's are registered already.
    pub registry: Registry,
    /// The node and pod watches' metrics (exported at 0 where nothing watches, the demo).
    pub watch_metrics: WatchMetrics,
    /// The event writer's metrics (exported at 0 where no events are written).
    pub event_metrics: EventMetrics,
}

/// A fresh registry with the watch and event metrics every `serve` exports.
fn source_metrics() -> Result<(Registry, WatchMetrics, EventMetrics)> {
    let registry = Registry::new();
    let watch = WatchMetrics::register(&registry).context("registering metrics")?;
    let events = EventMetrics::register(&registry).context("registering metrics")?;
    Ok((registry, watch, events))
}

/// A started extender: its state, and the configuration it runs with.
#[derive(Clone)]
pub struct Service {
    /// The extender (shared with the HTTP handlers and the view updater).
    pub extender: Arc<Extender>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The telemetry refresher (shared with the OCM score publisher).
    pub refresher: Arc<Refresher>,
    /// The metrics registry (`/metrics`).
    pub registry: Registry,
    /// What the current fleet view says (nodes known, telemetry age, …).
    pub view_metrics: ViewMetrics,
    /// The grid-intensity and carbon-rate gauges (shared with the OCM publisher).
    carbon_gauges: CarbonGauges,
    /// Grid carbon intensity (shared with the OCM publisher).
    carbon: Arc<dyn CarbonIntensitySource>,
    /// The clock (shared with the OCM publisher).
    clock: Clock,
    /// Where pod Events go (shared with the carbon-window controller).
    events: Arc<dyn EventSink>,
    /// A live carbon source's background refresh (stops with the last clone).
    _carbon_refresh: Option<Arc<RefreshTask>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("extender", &self.extender)
            .finish_non_exhaustive()
    }
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
        let registry = parts.registry;
        let carbon_refresh = parts.carbon.start(&registry).await?;
        let carbon_gauges = CarbonGauges::register(&registry).context("registering metrics")?;
        let view_metrics =
            ViewMetrics::register(&registry, &carbon_gauges).context("registering metrics")?;
        let extender_metrics =
            ExtenderMetrics::register(&registry).context("registering metrics")?;
        let settings = Arc::new(ViewSettings::of(&config));
        let inputs = Inputs {
            nodes: parts.nodes,
            refresher: Arc::clone(&refresher),
            carbon: Arc::clone(&parts.carbon.source),
            settings: Arc::clone(&settings),
            clock: parts.clock.clone(),
            carbon_logged: Mutex::default(),
        };
        let extender = Arc::new(Extender::new(
            FleetView::empty(settings, (parts.clock)()),
            power,
            extender_metrics,
            Arc::clone(&parts.events),
            ExtenderSettings::of(&config),
        ));
        let target = Arc::clone(&extender);
        let publish = move |view: FleetView| target.publish(view);
        update(&inputs, &view_metrics, &publish).await;
        tokio::spawn(run_updater(
            inputs,
            view_metrics.clone(),
            view_every,
            publish,
        ));
        Ok(Self {
            extender,
            config,
            refresher,
            registry,
            view_metrics,
            carbon_gauges,
            carbon: parts.carbon.source,
            clock: parts.clock,
            events: parts.events,
            _carbon_refresh: carbon_refresh,
        })
    }

    /// Starts the carbon-window controller beside the extender (`carbonWindow.enabled` in
    /// `serve`): it shares the carbon source, clock, Event writer and registry.
    pub async fn spawn_carbon_window(&self) -> Result<Gating> {
        let client = kube::Client::try_default()
            .await
            .context("carbonWindow: connecting to the apiserver (in-cluster or KUBECONFIG)")?;
        spawn_gating(
            &self.config,
            client,
            Arc::clone(&self.carbon),
            self.clock.clone(),
            Arc::clone(&self.events),
            &self.registry,
        )
        .await
    }

    /// Starts the OCM score publisher beside the extender (`ocm.enabled` in `serve`): it
    /// shares the telemetry, carbon source, clock and registry.
    pub async fn spawn_ocm(&self) -> Result<Publishing> {
        spawn_publisher(
            &self.config,
            Arc::clone(&self.refresher),
            Arc::clone(&self.carbon),
            self.clock.clone(),
            &self.registry,
            &self.carbon_gauges,
        )
        .await
    }

    /// The HTTP routes: the extender's and the placement API's.
    pub fn router(&self) -> Router {
        server::router(
            Arc::clone(&self.extender),
            self.registry.clone(),
            &self.config.extender.prefix,
            self.config.extender.max_body_bytes,
        )
        .merge(server::placement::router(
            Arc::new(
                Placer::new(self.config.placement.clone()).with_carbon(Arc::clone(&self.carbon)),
            ),
            self.config.extender.max_body_bytes,
        ))
    }
}

/// `ecoplace ocm-scores`: the OCM score publisher alone, on its own telemetry refresher and
/// registry (no extender).
pub struct OcmScores {
    /// The telemetry refresher (`/readyz`, `ecoplace_telemetry_age_seconds`).
    pub refresher: Arc<Refresher>,
    /// The running publisher.
    pub publishing: Publishing,
    /// The registry holding the publisher's metrics (`/metrics`).
    pub registry: Registry,
    /// The clock scores are stamped with.
    pub clock: Clock,
    /// A live carbon source's background refresh (stops when dropped).
    pub carbon_refresh: Option<Arc<RefreshTask>>,
}

impl OcmScores {
    /// Builds the sources `config` describes, waits for the first telemetry attempt, and
    /// joins the Lease election.
    pub async fn start(config: Arc<Config>) -> Result<Self> {
        let (source, carbon) = sources(&config, "for the score publisher")?;
        let clock: Clock = Arc::new(Utc::now);
        let refresher = Arc::new(Refresher::spawn_with_clock(
            Arc::new(source),
            Duration::from_secs_f64(config.telemetry.refresh_seconds),
            clock.clone(),
        ));
        refresher.first_attempt().await;
        let registry = Registry::new();
        let carbon_refresh = carbon.start(&registry).await?;
        let gauges = CarbonGauges::register(&registry).context("registering metrics")?;
        let publishing = spawn_publisher(
            &config,
            Arc::clone(&refresher),
            carbon.source,
            clock.clone(),
            &registry,
            &gauges,
        )
        .await?;
        Ok(Self {
            refresher,
            publishing,
            registry,
            clock,
            carbon_refresh,
        })
    }
}

/// `ecoplace carbon-window`: the carbon-window controller alone, with its carbon source,
/// Event writer and registry.
pub struct CarbonWindow {
    /// The running controller.
    pub gating: Gating,
    /// The registry holding its metrics (`/metrics`).
    pub registry: Registry,
    /// The carbon source (`/readyz`).
    pub carbon: Carbon,
    /// A live carbon source's background refresh (stops when dropped).
    pub carbon_refresh: Option<Arc<RefreshTask>>,
}

impl CarbonWindow {
    /// Builds the carbon source `config` describes, connects to the apiserver the
    /// environment names (in-cluster or KUBECONFIG) and joins the Lease election.
    pub async fn start(config: Arc<Config>) -> Result<Self> {
        let carbon = carbon_alone(&config)?;
        let registry = Registry::new();
        let carbon_refresh = carbon.start(&registry).await?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to the apiserver (in-cluster or KUBECONFIG)")?;
        let events: Arc<dyn EventSink> = if config.events.enabled {
            let metrics = EventMetrics::register(&registry).context("registering metrics")?;
            Arc::new(KubeEvents::spawn(
                client.clone(),
                EventOptions::from_config(&config.events),
                metrics,
            ))
        } else {
            Arc::new(NoEvents)
        };
        let gating = spawn_gating(
            &config,
            client,
            Arc::clone(&carbon.source),
            Arc::new(Utc::now),
            events,
            &registry,
        )
        .await?;
        Ok(Self {
            gating,
            registry,
            carbon,
            carbon_refresh,
        })
    }
}

/// Registers the controller's metrics in `registry` and starts it on `client`.
pub async fn spawn_gating(
    config: &Config,
    client: kube::Client,
    carbon: Arc<dyn CarbonIntensitySource>,
    clock: Clock,
    events: Arc<dyn EventSink>,
    registry: &Registry,
) -> Result<Gating> {
    let metrics = WindowMetrics::register(registry).context("carbonWindow: registering metrics")?;
    let settings = Arc::new(WindowSettings::of(config));
    if settings.zones.is_empty() {
        tracing::warn!(
            "carbonWindow: no carbon zone (carbonWindow.zones, topology.carbonZones): every gated pod is released at once"
        );
    }
    crate::carbon_window::spawn(crate::carbon_window::Inputs {
        client,
        carbon,
        settings,
        clock,
        events,
        metrics,
    })
    .await
}

/// Registers the publisher's metrics in `registry` and starts it on the hub the
/// environment names (in-cluster or KUBECONFIG).
async fn spawn_publisher(
    config: &Config,
    refresher: Arc<Refresher>,
    carbon: Arc<dyn CarbonIntensitySource>,
    clock: Clock,
    registry: &Registry,
    gauges: &CarbonGauges,
) -> Result<Publishing> {
    let client = kube::Client::try_default()
        .await
        .context("ocm: connecting to the hub apiserver (in-cluster or KUBECONFIG)")?;
    let metrics = OcmMetrics::register(registry, gauges).context("ocm: registering metrics")?;
    crate::ocm::spawn(crate::ocm::Inputs {
        client,
        refresher,
        carbon,
        settings: Arc::new(OcmSettings::of(config)),
        clock,
        metrics,
    })
    .await
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
    let (registry, watch_metrics, event_metrics) = source_metrics()?;
    let nodes: Arc<dyn NodeSource> = Arc::new(DemoNodes::new(&fleet, &ViewSettings::of(&config)));
    let carbon = Carbon::fixed(Arc::new(
        CarbonCurves::embedded_2020().context("embedded carbon curves")?,
    ));
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
        registry,
        watch_metrics,
        event_metrics,
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
    let (registry, watch_metrics, event_metrics) = source_metrics()?;
    let events: Arc<dyn EventSink> = if config.events.enabled {
        Arc::new(KubeEvents::spawn(
            client.clone(),
            EventOptions::from_config(&config.events),
            event_metrics.clone(),
        ))
    } else {
        Arc::new(NoEvents)
    };
    let nodes: Arc<dyn NodeSource> = Arc::new(
        KubeNodes::spawn(kube_config, &watch_metrics)
            .context("starting the node and pod watches")?,
    );
    Ok(Parts {
        config,
        nodes,
        telemetry: Arc::new(source),
        carbon,
        clock: Arc::new(Utc::now),
        events,
        registry,
        watch_metrics,
        event_metrics,
    })
}

/// The Prometheus/Thanos telemetry source and the carbon source the configuration
/// describes; `when` says when `telemetry.prometheus` is required (for the error).
pub fn sources(config: &Config, when: &str) -> Result<(PrometheusSource, Carbon)> {
    let prom = config
        .telemetry
        .prometheus
        .clone()
        .with_context(|| format!("telemetry.prometheus: required {when}"))?;
    let url = kepler_client::prom::redact_url(&prom.endpoint.url);
    let source =
        PrometheusSource::new(prom).with_context(|| format!("telemetry.prometheus `{url}`"))?;
    let carbon = carbon(config, Some(&source))?;
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

/// A carbon source as configured; a live provider's must be [`Carbon::start`]ed before it
/// answers (until then every zone is unknown: decisions fail open).
#[derive(Clone)]
pub struct Carbon {
    /// What decisions read.
    pub source: Arc<dyn CarbonIntensitySource>,
    /// The same source when it is a live provider (refresh, status, history).
    pub live: Option<LiveCarbon>,
}

impl Carbon {
    /// A source that needs no refresh (curves, constants, a Prometheus metric).
    pub fn fixed(source: Arc<dyn CarbonIntensitySource>) -> Self {
        Self { source, live: None }
    }

    /// A live provider's source.
    pub fn live(live: LiveCarbon) -> Self {
        Self {
            source: Arc::new(live.clone()),
            live: Some(live),
        }
    }

    /// In words, for start-up logs and reports.
    pub fn describe(&self) -> Option<String> {
        self.live.as_ref().map(LiveCarbon::describe)
    }

    /// For a live provider: registers its metrics in `registry`, refreshes every zone once
    /// (bounded by its timeout) and keeps refreshing in the background while the returned
    /// task is held. Nothing to do for the other sources.
    pub async fn start(&self, registry: &Registry) -> Result<Option<Arc<RefreshTask>>> {
        let Some(live) = &self.live else {
            return Ok(None);
        };
        LiveCarbonMetrics::register(registry, live.clone()).context("registering metrics")?;
        let task = live.start().await;
        for z in live.status() {
            match (&z.now_g_per_kwh, &z.last_error) {
                (Some(g), _) => tracing::info!(
                    zone = z.zone,
                    source = live.source_name(),
                    "carbon: {g:.0} gCO2e/kWh ({} intensity) now",
                    live.signal()
                ),
                (None, e) => tracing::warn!(
                    zone = z.zone,
                    source = live.source_name(),
                    "carbon: no intensity yet ({}); decisions fail open (carbon_missing) for this zone until a refresh succeeds",
                    e.as_deref().unwrap_or("no data")
                ),
            }
        }
        Ok(Some(Arc::new(task)))
    }
}

/// The live provider `carbon` configures, built and checked (files exist, URLs parse,
/// periods are positive) without touching the network; `None` when there is none.
pub fn live_carbon(
    carbon: &crate::config::CarbonConfig,
    clock: Clock,
) -> Result<Option<LiveCarbon>, CarbonError> {
    if let Some(c) = &carbon.electricity_maps {
        return c.build(clock).map(Some);
    }
    if let Some(c) = &carbon.watt_time {
        return c.build(clock).map(Some);
    }
    if let Some(c) = &carbon.carbon_aware_sdk {
        return c.build(clock).map(Some);
    }
    Ok(None)
}

/// The carbon source `config.carbon` describes, for a verb that reads no telemetry (the
/// carbon-window controller): a Prometheus metric still connects through
/// `telemetry.prometheus`.
pub fn carbon_alone(config: &Config) -> Result<Carbon> {
    match &config.carbon.prometheus {
        Some(_) => Ok(sources(config, "for carbon.prometheus")?.1),
        None => carbon(config, None),
    }
}

/// The carbon source `config.carbon` describes; a Prometheus metric reuses `source`'s
/// connection.
pub fn carbon(config: &Config, source: Option<&PrometheusSource>) -> Result<Carbon> {
    let c = &config.carbon;
    if let Some(live) = live_carbon(c, Arc::new(Utc::now))? {
        tracing::info!("carbon: {}", live.describe());
        return Ok(Carbon::live(live));
    }
    if let Some(p) = &c.prometheus {
        let source =
            source.context("carbon.prometheus: needs telemetry.prometheus for the connection")?;
        let metric = PrometheusCarbon::new(source.client().clone(), p.clone())
            .context("carbon.prometheus")?;
        return Ok(Carbon::fixed(Arc::new(metric)));
    }
    let curves = curves(c).context("carbon: loading curves")?;
    if curves.zones().next().is_none() {
        tracing::warn!(
            "carbon: no source configured; the extender fails open (carbon_missing) until one is"
        );
    }
    Ok(Carbon::fixed(Arc::new(curves)))
}
