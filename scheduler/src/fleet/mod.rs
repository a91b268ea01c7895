//! The fleet layer shared by every component that decides about nodes: where node facts
//! come from (the Node/Pod watch and its health, or the demo fleet), pod requests and
//! quantities, pod policy from annotations and namespaces, carbon outlooks, and the
//! immutable [`FleetView`] with the background updater that rebuilds it.
//!
//! It may import `config` only: the extender, OCM, placement and node rebalance import
//! `fleet`, never the reverse, and the updater hands each view to a publish callback.

pub mod metrics;
pub mod outlook;
pub mod policy;
pub mod quantity;
pub mod requests;
pub mod updater;
pub mod view;
pub mod watch;
pub mod watch_health;

pub use metrics::{CarbonGauges, LiveCarbonMetrics, ViewMetrics, WatchMetrics};
pub use outlook::outlook;
pub use requests::{PodRequests, pod_requests};
pub use updater::{Inputs, build_view, run_updater, update, view_inputs};
pub use view::{FailOpen, FleetView, NodeFact, ViewInputs, carbon_zone, target};
pub use watch::{DemoNodes, KubeNodes, NodeSource, node_facts};

use crate::config::{Config, PolicyConfig, PowerConfig, TopologyConfig};

/// The configuration a fleet view is built with, taken from the whole `Config` once.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    /// Carbon zones and latency by node topology label.
    pub topology: TopologyConfig,
    /// Node power profiles by instance type.
    pub power: PowerConfig,
    /// Pod policy defaults and namespace overrides.
    pub policy: PolicyConfig,
    /// The Kepler metrics' cluster label of this cluster (`telemetry.cluster`).
    pub cluster: String,
    /// Telemetry older than this makes decisions fail open, seconds.
    pub telemetry_stale_after_seconds: f64,
    /// A watch failing for longer than this makes names-mode calls fail open, seconds.
    pub watch_stale_after_seconds: f64,
}

impl ViewSettings {
    /// The view's part of `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            topology: config.topology.clone(),
            power: config.power.clone(),
            policy: config.policy.clone(),
            cluster: config.telemetry.cluster.clone(),
            telemetry_stale_after_seconds: config.telemetry.stale_after_seconds,
            watch_stale_after_seconds: config.kubernetes.watch_stale_after_seconds,
        }
    }
}
