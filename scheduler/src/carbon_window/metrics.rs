//! The carbon-window controller's Prometheus metrics, registered next to the service's own.

use prometheus::{
    Counter, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::hold::Release;
use crate::fleet::metrics::{registered, zeroed};

/// Metrics of the carbon-window controller.
#[derive(Debug, Clone)]
pub struct WindowMetrics {
    /// `ecoplace_carbon_window_pods_held`: pods carrying the gate now.
    pub held: IntGauge,
    /// `ecoplace_carbon_window_pods_overdue`: gated pods past their latest start plus
    /// `overdueAfterSeconds` (every replica counts them, leader or not).
    pub overdue: IntGauge,
    /// `ecoplace_carbon_window_released_total{reason}`: gates removed, by why then.
    pub released: IntCounterVec,
    /// `ecoplace_carbon_window_estimated_saved_grams_total`: forecast grams saved by the
    /// released pods against starting at once.
    pub saved_g: Counter,
    /// `ecoplace_carbon_window_hold_seconds`: creation to release of each released pod.
    pub hold_seconds: Histogram,
    /// `ecoplace_carbon_window_patch_errors_total`: apiserver calls that failed (gate
    /// removals and hold annotations; a failed removal is retried).
    pub patch_errors: IntCounter,
    /// `ecoplace_carbon_window_leader`: 1 while this replica holds the Lease and releases.
    pub leader: IntGauge,
}

impl WindowMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let reasons: Vec<&str> = Release::ALL.iter().map(|r| r.as_str()).collect();
        Ok(Self {
            held: registered(
                registry,
                IntGauge::new(
                    "ecoplace_carbon_window_pods_held",
                    "Pods carrying the ecoplace.io/carbon-window scheduling gate.",
                )?,
            )?,
            overdue: registered(
                registry,
                IntGauge::new(
                    "ecoplace_carbon_window_pods_overdue",
                    "Gated pods still held past their latest start (deadline minus expected duration) plus carbonWindow.overdueAfterSeconds.",
                )?,
            )?,
            released: zeroed(
                registered(
                    registry,
                    IntCounterVec::new(
                        Opts::new(
                            "ecoplace_carbon_window_released_total",
                            "Carbon-window gates removed, by why the pod was released then.",
                        ),
                        &["reason"],
                    )?,
                )?,
                &reasons,
            ),
            saved_g: registered(
                registry,
                Counter::new(
                    "ecoplace_carbon_window_estimated_saved_grams_total",
                    "Forecast gCO2e the released pods save against starting at once (requests × carbonWindow.wattsPerCore × intensity difference).",
                )?,
            )?,
            hold_seconds: registered(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ecoplace_carbon_window_hold_seconds",
                        "Seconds from a gated pod's creation to the removal of its gate.",
                    )
                    .buckets(vec![
                        10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
                    ]),
                )?,
            )?,
            patch_errors: registered(
                registry,
                IntCounter::new(
                    "ecoplace_carbon_window_patch_errors_total",
                    "Failed apiserver writes of the carbon-window controller (gate removals are retried).",
                )?,
            )?,
            leader: registered(
                registry,
                IntGauge::new(
                    "ecoplace_carbon_window_leader",
                    "1 while this replica holds the carbon-window controller's Lease.",
                )?,
            )?,
        })
    }
}
