//! The service's own Prometheus metrics (`GET /metrics`).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

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
