//! The service's own Prometheus metrics (`GET /metrics`).

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::extender::Verb;
use crate::extender::fleet::FailOpen;
use crate::extender::policy::ANNOTATIONS;

/// Every metric ecoplace exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `ecoplace_extender_requests_total{verb,code}`.
    pub requests: IntCounterVec,
    /// `ecoplace_extender_request_duration_seconds{verb}`.
    pub duration: HistogramVec,
    /// `ecoplace_fail_open_total{reason}`.
    pub fail_open: IntCounterVec,
    /// `ecoplace_decisions_total{verb,outcome}` (outcome: scored, skipped, fail_open).
    pub decisions: IntCounterVec,
    /// `ecoplace_annotation_errors_total{annotation}`.
    pub annotation_errors: IntCounterVec,
    /// `ecoplace_telemetry_age_seconds`.
    pub telemetry_age: Gauge,
    /// `ecoplace_nodes_known`.
    pub nodes_known: Gauge,
    /// `ecoplace_carbon_avoided_grams_total`: estimated carbon the preferred node saves
    /// over the pod's expected lifetime against the median passing node.
    pub carbon_avoided: prometheus::Counter,
    /// `ecoplace_events_total{result}` (written, failed, suppressed): Kubernetes Events.
    pub events: IntCounterVec,
    /// `ecoplace_events_dropped_total`: events dropped because the write queue was full.
    pub events_dropped: IntCounter,
    /// `ecoplace_watch_up{watch}` (nodes, pods): 1 while the Kubernetes watch delivers, 0
    /// while it is failing (or before its first list).
    pub watch_up: IntGaugeVec,
    /// `ecoplace_watch_errors_total{watch}`: errors reported by a Kubernetes watch.
    pub watch_errors: IntCounterVec,
    /// `ecoplace_latency_unknown_nodes{user_region}`: known nodes whose latency from a user
    /// region of `topology.latencyMs` is not configured (neutral latency term there).
    pub latency_unknown: IntGaugeVec,
    /// `ecoplace_grid_carbon_intensity_grams_per_kwh{zone}` and
    /// `ecoplace_carbon_rate_grams_per_hour{kind,target,zone}`, as the extender sets them.
    pub carbon: CarbonGauges,
}

/// Label values of `ecoplace_decisions_total{outcome}`.
pub const DECISION_OUTCOMES: [&str; 3] = ["scored", "skipped", "fail_open"];
/// Label values of `ecoplace_events_total{result}`.
pub const EVENT_RESULTS: [&str; 3] = ["written", "failed", "suppressed"];
/// The Kubernetes watches, label values of `ecoplace_watch_*{watch}`.
pub const WATCHES: [&str; 2] = ["nodes", "pods"];

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
        let grid_intensity = GaugeVec::new(
            Opts::new(
                "ecoplace_grid_carbon_intensity_grams_per_kwh",
                "Grid carbon intensity now of each zone ecoplace decides for (gCO2e/kWh), from the configured carbon source.",
            ),
            &["zone"],
        )?;
        let carbon_rate = GaugeVec::new(
            Opts::new(
                "ecoplace_carbon_rate_grams_per_hour",
                "Measured power of a node (kind=node) or managed cluster (kind=cluster) times its zone's grid intensity now, gCO2e/h.",
            ),
            &["kind", "target", "zone"],
        )?;
        registry.register(Box::new(grid_intensity.clone()))?;
        registry.register(Box::new(carbon_rate.clone()))?;
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

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "ecoplace_extender_requests_total",
                "Extender calls by verb and HTTP status.",
            ),
            &["verb", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "ecoplace_extender_request_duration_seconds",
                "Time to answer an extender call, decoding to encoding.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0,
            ]),
            &["verb"],
        )?;
        let fail_open = IntCounterVec::new(
            Opts::new(
                "ecoplace_fail_open_total",
                "Calls answered with every node passing and neutral scores, by reason.",
            ),
            &["reason"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new("ecoplace_decisions_total", "Decisions by verb and outcome."),
            &["verb", "outcome"],
        )?;
        let annotation_errors = IntCounterVec::new(
            Opts::new(
                "ecoplace_annotation_errors_total",
                "Malformed ecoplace.io/* pod annotations (defaults applied).",
            ),
            &["annotation"],
        )?;
        let telemetry_age = Gauge::new(
            "ecoplace_telemetry_age_seconds",
            "Age of the Kepler snapshot decisions use (-1: none).",
        )?;
        let nodes_known = Gauge::new("ecoplace_nodes_known", "Nodes in the extender's view.")?;
        let carbon_avoided = prometheus::Counter::new(
            "ecoplace_carbon_avoided_grams_total",
            "Estimated gCO2e the preferred node saves vs the median passing node, over each pod's expected lifetime.",
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "ecoplace_events_total",
                "Kubernetes Events on pods by result: written, failed, suppressed (per-pod rate limit).",
            ),
            &["result"],
        )?;
        let events_dropped = IntCounter::new(
            "ecoplace_events_dropped_total",
            "Kubernetes Events dropped because the write queue was full.",
        )?;
        let watch_up = IntGaugeVec::new(
            Opts::new(
                "ecoplace_watch_up",
                "1 while the Kubernetes watch (nodes, pods) delivers, 0 while it is failing or before its first list.",
            ),
            &["watch"],
        )?;
        let watch_errors = IntCounterVec::new(
            Opts::new(
                "ecoplace_watch_errors_total",
                "Errors reported by the Kubernetes watches (connection, HTTP status, stream cut, relist).",
            ),
            &["watch"],
        )?;
        let latency_unknown = IntGaugeVec::new(
            Opts::new(
                "ecoplace_latency_unknown_nodes",
                "Known nodes whose latency from this user region is not in topology.latencyMs (they pass with a neutral latency term).",
            ),
            &["user_region"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(fail_open.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(annotation_errors.clone()))?;
        registry.register(Box::new(telemetry_age.clone()))?;
        registry.register(Box::new(nodes_known.clone()))?;
        registry.register(Box::new(carbon_avoided.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(events_dropped.clone()))?;
        registry.register(Box::new(watch_up.clone()))?;
        registry.register(Box::new(watch_errors.clone()))?;
        registry.register(Box::new(latency_unknown.clone()))?;
        let carbon = CarbonGauges::register(&registry)?;
        // Every counter with known label values starts at 0, so that a dashboard shows 0
        // rather than "No data" before the first call, fault or event.
        for verb in [Verb::Filter, Verb::Prioritize] {
            for code in ["200", "400"] {
                requests.with_label_values(&[verb.as_str(), code]);
            }
            duration.with_label_values(&[verb.as_str()]);
            for outcome in DECISION_OUTCOMES {
                decisions.with_label_values(&[verb.as_str(), outcome]);
            }
        }
        for reason in FailOpen::ALL {
            fail_open.with_label_values(&[reason.as_str()]);
        }
        for annotation in ANNOTATIONS {
            annotation_errors.with_label_values(&[annotation]);
        }
        for result in EVENT_RESULTS {
            events.with_label_values(&[result]);
        }
        for watch in WATCHES {
            watch_errors.with_label_values(&[watch]);
        }
        Ok(Self {
            registry,
            requests,
            duration,
            fail_open,
            decisions,
            annotation_errors,
            telemetry_age,
            nodes_known,
            carbon_avoided,
            events,
            events_dropped,
            watch_up,
            watch_errors,
            latency_unknown,
            carbon,
        })
    }

    /// The registry, for metrics registered elsewhere (the OCM publisher's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
