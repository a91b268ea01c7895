//! The fleet layer's metrics: the Kubernetes watches' health, and what the current view
//! says (nodes known, telemetry age, latency gaps, grid intensity and carbon rates).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::view::FleetView;

/// `metric`, registered in `registry` (the handle returned is a clone of the one registered).
pub fn registered<M>(registry: &Registry, metric: M) -> Result<M, prometheus::Error>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// `metric` with a series at 0 for each of `values` of its one label, so that a dashboard
/// shows 0 rather than "No data" before the first event.
pub fn zeroed(metric: IntCounterVec, values: &[&str]) -> IntCounterVec {
    for v in values {
        metric.with_label_values(&[v]);
    }
    metric
}

/// The Kubernetes watches, label values of `ecoplace_watch_*{watch}`.
pub const WATCHES: [&str; 2] = ["nodes", "pods"];

/// Health of the Node and Pod watches.
#[derive(Debug, Clone)]
pub struct WatchMetrics {
    /// `ecoplace_watch_up{watch}` (nodes, pods): 1 while the Kubernetes watch delivers, 0
    /// while it is failing (or before its first list).
    pub watch_up: IntGaugeVec,
    /// `ecoplace_watch_errors_total{watch}`: errors reported by a Kubernetes watch.
    pub watch_errors: IntCounterVec,
}

impl WatchMetrics {
    /// Creates the metrics and registers them in `registry` (errors at 0 from start).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let watch_up = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "ecoplace_watch_up",
                    "1 while the Kubernetes watch (nodes, pods) delivers, 0 while it is failing or before its first list.",
                ),
                &["watch"],
            )?,
        )?;
        let watch_errors = zeroed(
            registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "ecoplace_watch_errors_total",
                        "Errors reported by the Kubernetes watches (connection, HTTP status, stream cut, relist).",
                    ),
                    &["watch"],
                )?,
            )?,
            &WATCHES,
        );
        Ok(Self {
            watch_up,
            watch_errors,
        })
    }
}

/// `ecoplace_telemetry_age_seconds`, unregistered (the view's, and `ocm-scores`' own).
pub fn telemetry_age_gauge() -> Result<Gauge, prometheus::Error> {
    Gauge::new(
        "ecoplace_telemetry_age_seconds",
        "Age of the Kepler snapshot decisions use (-1: none).",
    )
}

/// What the current fleet view says, set each time one is built.
#[derive(Debug, Clone)]
pub struct ViewMetrics {
    /// `ecoplace_telemetry_age_seconds` at the view's build time (−1: no snapshot).
    pub telemetry_age: Gauge,
    /// `ecoplace_nodes_known`.
    pub nodes_known: Gauge,
    /// `ecoplace_latency_unknown_nodes{user_region}`: known nodes whose latency from a user
    /// region of `topology.latencyMs` is not configured (neutral latency term there).
    pub latency_unknown: IntGaugeVec,
    /// `ecoplace_grid_carbon_intensity_grams_per_kwh{zone}` and
    /// `ecoplace_carbon_rate_grams_per_hour{kind="node",target,zone}`.
    pub carbon: CarbonGauges,
}

impl ViewMetrics {
    /// Creates the metrics and registers them in `registry`; the carbon gauges are
    /// `carbon`'s (registered once per registry, shared with the OCM publisher).
    pub fn register(registry: &Registry, carbon: &CarbonGauges) -> Result<Self, prometheus::Error> {
        let telemetry_age = registered(registry, telemetry_age_gauge()?)?;
        let nodes_known = registered(
            registry,
            Gauge::new("ecoplace_nodes_known", "Nodes in the extender's view.")?,
        )?;
        let latency_unknown = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "ecoplace_latency_unknown_nodes",
                    "Known nodes whose latency from this user region is not in topology.latencyMs (they pass with a neutral latency term).",
                ),
                &["user_region"],
            )?,
        )?;
        Ok(Self {
            telemetry_age,
            nodes_known,
            latency_unknown,
            carbon: carbon.handle(),
        })
    }

    /// Sets every gauge from `view`.
    pub fn observe(&self, view: &FleetView) {
        self.nodes_known.set(view.targets.len() as f64);
        let age = view.telemetry_age_s(view.inputs.built_at).unwrap_or(-1.0);
        self.telemetry_age.set(age);
        self.carbon.set(
            view.inputs
                .carbon
                .iter()
                .map(|(zone, o)| (zone.as_str(), o.now_g_per_kwh)),
            view.carbon_rates
                .iter()
                .map(|(node, zone, g)| ("node", node.as_str(), zone.as_str(), *g)),
        );
        for (region, &n) in &view.latency_unknown {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.latency_unknown
                .with_label_values(&[region.as_str()])
                .set(n);
        }
    }
}

/// The grid-intensity and carbon-rate gauges, shared by the extender and the OCM publisher
/// (each handle removes only the series it set itself).
#[derive(Debug, Clone)]
pub struct CarbonGauges {
    /// `ecoplace_grid_carbon_intensity_grams_per_kwh{zone}`.
    pub grid_intensity: GaugeVec,
    /// `ecoplace_carbon_rate_grams_per_hour{kind,target,zone}`.
    pub carbon_rate: GaugeVec,
    /// The series this handle set last time: zones, and (kind, target, zone).
    set_before: Arc<Mutex<SetBefore>>,
}

/// Label values a [`CarbonGauges`] handle set on its last call.
#[derive(Debug, Default)]
struct SetBefore {
    zones: BTreeSet<String>,
    rates: BTreeSet<[String; 3]>,
}

impl CarbonGauges {
    /// Creates the gauges and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let grid_intensity = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    "ecoplace_grid_carbon_intensity_grams_per_kwh",
                    "Grid carbon intensity now of each zone ecoplace decides for (gCO2e/kWh), from the configured carbon source.",
                ),
                &["zone"],
            )?,
        )?;
        let carbon_rate = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    "ecoplace_carbon_rate_grams_per_hour",
                    "Measured power of a node (kind=node) or managed cluster (kind=cluster) times its zone's grid intensity now, gCO2e/h.",
                ),
                &["kind", "target", "zone"],
            )?,
        )?;
        Ok(Self {
            grid_intensity,
            carbon_rate,
            set_before: Arc::default(),
        })
    }

    /// Another handle on the same gauges, removing only the series it sets itself.
    pub fn handle(&self) -> Self {
        Self {
            grid_intensity: self.grid_intensity.clone(),
            carbon_rate: self.carbon_rate.clone(),
            set_before: Arc::default(),
        }
    }

    /// Sets `intensities` (zone, g/kWh) and `rates` (kind, target, zone, g/h); the series
    /// this handle set last time and not now disappear.
    pub fn set<'a>(
        &self,
        intensities: impl IntoIterator<Item = (&'a str, f64)>,
        rates: impl IntoIterator<Item = (&'a str, &'a str, &'a str, f64)>,
    ) {
        let Ok(mut before) = self.set_before.lock() else {
            return;
        };
        let mut zones = BTreeSet::new();
        for (zone, g) in intensities {
            self.grid_intensity.with_label_values(&[zone]).set(g);
            zones.insert(zone.to_string());
        }
        for gone in before.zones.difference(&zones) {
            let _ = self.grid_intensity.remove_label_values(&[gone.as_str()]);
        }
        let mut set = BTreeSet::new();
        for (kind, target, zone, g) in rates {
            self.carbon_rate
                .with_label_values(&[kind, target, zone])
                .set(g);
            set.insert([kind.to_string(), target.to_string(), zone.to_string()]);
        }
        for gone in before.rates.difference(&set) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.carbon_rate.remove_label_values(&labels);
        }
        *before = SetBefore { zones, rates: set };
    }
}

/// A live carbon source's state, read at every scrape: the intensity used now per zone,
/// the age and forecast horizon of its data, whether it is stale, and refresh errors by
/// kind (`ecoplace_carbon_source_*`). Labels never hold a credential.
pub struct LiveCarbonMetrics {
    live: kepler_client::carbon::live::LiveCarbon,
    intensity: GaugeVec,
    age: GaugeVec,
    horizon: GaugeVec,
    stale: IntGaugeVec,
    errors: IntCounterVec,
    descs: Vec<prometheus::core::Desc>,
}

impl LiveCarbonMetrics {
    /// Registers the collector of `live` in `registry`.
    pub fn register(
        registry: &Registry,
        live: kepler_client::carbon::live::LiveCarbon,
    ) -> Result<(), prometheus::Error> {
        let zone_labels = &["zone", "provider_zone", "source", "signal"];
        let intensity = GaugeVec::new(
            Opts::new(
                "ecoplace_carbon_source_intensity_grams_per_kwh",
                "Grid carbon intensity now of each zone as the live source gives it (gCO2e/kWh; signal says lifecycle, direct, average or marginal); absent while the zone is stale or unknown.",
            ),
            zone_labels,
        )?;
        let age = GaugeVec::new(
            Opts::new(
                "ecoplace_carbon_source_age_seconds",
                "Seconds since the last successful refresh of the zone's carbon data.",
            ),
            zone_labels,
        )?;
        let horizon = GaugeVec::new(
            Opts::new(
                "ecoplace_carbon_source_forecast_horizon_seconds",
                "Seconds of carbon intensity held beyond now (the provider's forecast).",
            ),
            zone_labels,
        )?;
        let stale = IntGaugeVec::new(
            Opts::new(
                "ecoplace_carbon_source_stale",
                "1 when the zone's carbon data is older than maxAgeSeconds (or there is none yet): decisions treat the zone as carbon_missing.",
            ),
            zone_labels,
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "ecoplace_carbon_source_refresh_errors_total",
                "Failed calls to the live carbon source, by kind (unauthorized, rate_limited, unknown_zone, client, server, malformed, empty, timeout, transport, credentials).",
            ),
            &["source", "kind"],
        )?;
        for kind in kepler_client::carbon::live::FETCH_ERROR_KINDS {
            errors.with_label_values(&[live.source_name(), kind]);
        }
        use prometheus::core::Collector;
        let descs = [
            intensity.desc(),
            age.desc(),
            horizon.desc(),
            stale.desc(),
            errors.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        registry.register(Box::new(Self {
            live,
            intensity,
            age,
            horizon,
            stale,
            errors,
            descs,
        }))
    }
}

impl prometheus::core::Collector for LiveCarbonMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let source = self.live.source_name();
        let signal = self.live.signal();
        for g in [&self.intensity, &self.age, &self.horizon] {
            g.reset();
        }
        self.stale.reset();
        for z in self.live.status() {
            let labels = [
                z.zone.as_str(),
                z.provider_zone.as_str(),
                source,
                signal.as_str(),
            ];
            if let Some(g) = z.now_g_per_kwh {
                self.intensity.with_label_values(&labels).set(g);
            }
            if let Some(a) = z.age_s {
                self.age.with_label_values(&labels).set(a);
            }
            if let Some(h) = z.horizon_s {
                self.horizon.with_label_values(&labels).set(h);
            }
            self.stale
                .with_label_values(&labels)
                .set(i64::from(z.stale));
        }
        for (kind, n) in self.live.error_counts() {
            let c = self.errors.with_label_values(&[source, kind]);
            let seen = c.get();
            if n > seen {
                c.inc_by(n - seen);
            }
        }
        [
            self.intensity.collect(),
            self.age.collect(),
            self.horizon.collect(),
            self.stale.collect(),
            self.errors.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
