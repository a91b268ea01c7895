//! The extender's own metrics: calls, decisions, fail-open reasons, annotation errors,
//! carbon avoided, and the pod Events it writes.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use super::Verb;
use crate::fleet::FailOpen;
use crate::fleet::metrics::{registered, zeroed};
use crate::fleet::policy::ANNOTATIONS;

/// Label values of `ecoplace_decisions_total{outcome}`.
pub const DECISION_OUTCOMES: [&str; 3] = ["scored", "skipped", "fail_open"];
/// Label values of `ecoplace_events_total{result}`.
pub const EVENT_RESULTS: [&str; 3] = ["written", "failed", "suppressed"];

/// Metrics of the extender's calls and decisions.
#[derive(Debug, Clone)]
pub struct ExtenderMetrics {
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
    /// `ecoplace_carbon_avoided_grams_total`: estimated carbon the preferred node saves
    /// over the pod's expected lifetime against the median passing node.
    pub carbon_avoided: prometheus::Counter,
}

impl ExtenderMetrics {
    /// Creates the metrics and registers them in `registry`. Every counter with known
    /// label values starts at 0, so that a dashboard shows 0 rather than "No data" before
    /// the first call or fault.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "ecoplace_extender_requests_total",
                    "Extender calls by verb and HTTP status.",
                ),
                &["verb", "code"],
            )?,
        )?;
        let duration = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "ecoplace_extender_request_duration_seconds",
                    "Time to answer an extender call, decoding to encoding.",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0,
                ]),
                &["verb"],
            )?,
        )?;
        let fail_open = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "ecoplace_fail_open_total",
                    "Calls answered with every node passing and neutral scores, by reason.",
                ),
                &["reason"],
            )?,
        )?;
        let decisions = registered(
            registry,
            IntCounterVec::new(
                Opts::new("ecoplace_decisions_total", "Decisions by verb and outcome."),
                &["verb", "outcome"],
            )?,
        )?;
        let annotation_errors = zeroed(
            registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "ecoplace_annotation_errors_total",
                        "Malformed ecoplace.io/* pod annotations (defaults applied).",
                    ),
                    &["annotation"],
                )?,
            )?,
            &ANNOTATIONS,
        );
        let carbon_avoided = registered(
            registry,
            prometheus::Counter::new(
                "ecoplace_carbon_avoided_grams_total",
                "Estimated gCO2e the preferred node saves vs the median passing node, over each pod's expected lifetime.",
            )?,
        )?;
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
        Ok(Self {
            requests,
            duration,
            fail_open,
            decisions,
            annotation_errors,
            carbon_avoided,
        })
    }
}

/// Metrics of the Kubernetes Events written on pods.
#[derive(Debug, Clone)]
pub struct EventMetrics {
    /// `ecoplace_events_total{result}` (written, failed, suppressed): Kubernetes Events.
    pub events: IntCounterVec,
    /// `ecoplace_events_dropped_total`: events dropped because the write queue was full.
    pub events_dropped: IntCounter,
}

impl EventMetrics {
    /// Creates the metrics and registers them in `registry` (each result at 0 from start).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = zeroed(
            registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "ecoplace_events_total",
                        "Kubernetes Events on pods by result: written, failed, suppressed (per-pod rate limit).",
                    ),
                    &["result"],
                )?,
            )?,
            &EVENT_RESULTS,
        );
        let events_dropped = registered(
            registry,
            IntCounter::new(
                "ecoplace_events_dropped_total",
                "Kubernetes Events dropped because the write queue was full.",
            )?,
        )?;
        Ok(Self {
            events,
            events_dropped,
        })
    }
}
