//! The publisher's Prometheus metrics, registered next to the service's own.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::fleet::CarbonGauges;
use crate::fleet::metrics::{registered, zeroed};

/// Label values of `ecoplace_ocm_score_publish_total{result}` (each exported at 0 from start).
pub const RESULTS: [&str; 8] = [
    "published",
    "telemetry_missing",
    "telemetry_stale",
    "carbon_missing",
    "capacity_unknown",
    "infeasible",
    "cluster_unavailable",
    "failed",
];

/// Metrics of the OCM score publisher.
#[derive(Debug, Clone)]
pub struct OcmMetrics {
    /// `ecoplace_ocm_score_publish_total{result}`: one per cluster and round (published,
    /// telemetry_missing, telemetry_stale, carbon_missing, capacity_unknown, infeasible,
    /// cluster_unavailable, failed).
    pub publish: IntCounterVec,
    /// `ecoplace_ocm_score_publish_failures_total`: apiserver calls that failed (listing
    /// ManagedClusters, or writing a cluster's AddOnPlacementScore after retries).
    pub failures: IntCounter,
    /// `ecoplace_ocm_leader`: 1 while this replica holds the Lease and publishes.
    pub leader: IntGauge,
    /// The managed clusters' zone intensities and carbon rates (`kind="cluster"`).
    pub carbon: CarbonGauges,
}

impl OcmMetrics {
    /// Creates the metrics and registers them in `registry`; the carbon gauges are
    /// `carbon`'s (registered once per registry, shared with the extender in `serve`).
    pub fn register(registry: &Registry, carbon: &CarbonGauges) -> Result<Self, prometheus::Error> {
        let publish = zeroed(
            registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "ecoplace_ocm_score_publish_total",
                        "AddOnPlacementScore outcomes per managed cluster and round, by result.",
                    ),
                    &["result"],
                )?,
            )?,
            &RESULTS,
        );
        let failures = registered(
            registry,
            IntCounter::new(
                "ecoplace_ocm_score_publish_failures_total",
                "Failed apiserver calls of the OCM score publisher (list or write after retries).",
            )?,
        )?;
        let leader = registered(
            registry,
            IntGauge::new(
                "ecoplace_ocm_leader",
                "1 while this replica holds the OCM score publisher's Lease.",
            )?,
        )?;
        Ok(Self {
            publish,
            failures,
            leader,
            carbon: carbon.handle(),
        })
    }
}
