//! `ecoplace.yaml`: the service configuration. Unknown fields are errors, and every error
//! names the field path (`policy.namespaces.batch.objective`). One file per section, each
//! with its `check()` (paths below the section); what spans sections is checked here. A
//! leaf: it imports nothing else in the crate.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod carbon;
mod carbon_window;
mod events;
mod extender;
mod kubernetes;
mod ocm;
mod placement;
mod policy;
mod power;
mod rebalance;
pub mod reference;
mod telemetry;
mod topology;

pub use carbon::CarbonConfig;
pub use carbon_window::{CarbonWindowConfig, WindowLease};
pub use events::EventsConfig;
pub use extender::{ExtenderConfig, TlsConfig};
pub use kubernetes::KubernetesConfig;
pub use ocm::{LeaseConfig, OcmConfig, is_score_name_part};
pub use placement::PlacementConfig;
pub use policy::{NamespacePolicy, PolicyConfig};
pub use power::{NodeProfile, PowerConfig};
pub use rebalance::NodeRebalanceConfig;
pub use telemetry::TelemetryConfig;
pub use topology::TopologyConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The extender's HTTP server.
    pub extender: ExtenderConfig,
    /// Where telemetry comes from.
    pub telemetry: TelemetryConfig,
    /// Carbon zones and latency, keyed by node topology labels.
    pub topology: TopologyConfig,
    /// Node power profiles by instance type.
    pub power: PowerConfig,
    /// Pod policy defaults and per-namespace overrides.
    pub policy: PolicyConfig,
    /// Where grid carbon intensity comes from.
    pub carbon: CarbonConfig,
    /// Kubernetes Events written on pods.
    pub events: EventsConfig,
    /// Open Cluster Management: the `AddOnPlacementScore` publisher on the hub.
    pub ocm: OcmConfig,
    /// Batch placement on managed clusters (`/v1/placements`, `/v1/rebalance`).
    pub placement: PlacementConfig,
    /// Node-level rebalance (`ecoplace rebalance --nodes`): which pods may be evicted, how fast.
    pub rebalance: NodeRebalanceConfig,
    /// The Kubernetes watches behind the extender's node facts.
    pub kubernetes: KubernetesConfig,
    /// Carbon-aware time shifting: the scheduling-gate controller.
    pub carbon_window: CarbonWindowConfig,
}

/// An invalid configuration, with the field path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// File.
        file: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// A field is wrong.
    #[error("{file}: {path}: {reason}")]
    Field {
        /// File.
        file: String,
        /// Field path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads and checks a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            // serde_yaml's message may start with the same path: say it once.
            let reason = e.inner().to_string();
            let reason = match reason.strip_prefix(&format!("{path}: ")) {
                Some(rest) => rest.to_string(),
                None => reason,
            };
            ConfigError::Field {
                file: file.to_string(),
                path,
                reason,
            }
        })?;
        config
            .check()
            .map_err(|(path, reason)| ConfigError::Field {
                file: file.to_string(),
                path,
                reason,
            })?;
        Ok(config)
    }

    /// Semantic checks serde cannot express; `(field path, reason)`. Each section checks
    /// itself (paths below it); what spans sections is checked here.
    fn check(&self) -> Checked {
        let sections: [(&str, Checked); 11] = [
            ("extender", self.extender.check()),
            ("telemetry", self.telemetry.check()),
            ("kubernetes", self.kubernetes.check()),
            ("placement", self.placement.check()),
            ("rebalance", self.rebalance.check()),
            ("policy", self.policy.check()),
            ("events", self.events.check()),
            ("ocm", self.ocm.check()),
            ("power", self.power.check()),
            ("carbon", self.carbon.check()),
            (
                "carbonWindow",
                self.carbon_window.check(&self.ocm.lease.name),
            ),
        ];
        for (section, checked) in sections {
            checked.map_err(|(f, r)| (format!("{section}.{f}"), r))?;
        }
        if self.carbon.prometheus.is_some() && self.telemetry.prometheus.is_none() {
            return field(
                "carbon.prometheus",
                "needs telemetry.prometheus for the connection".into(),
            );
        }
        self.topology
            .check()
            .map_err(|(f, r)| (format!("topology.{f}"), r))
    }
}

/// A semantic check's outcome: `Err((field path, reason))`.
pub(crate) type Checked = Result<(), (String, String)>;

/// The failed check of field `path`.
fn field(path: &str, reason: String) -> Checked {
    Err((path.to_string(), reason))
}

/// A finite number above 0.
fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// Longest period or interval accepted, seconds (a day): periods become `Duration`s, and
/// bounded ones cannot overflow.
pub const MAX_PERIOD_S: f64 = 86_400.0;

/// A listen address must be `IP:PORT` (what the server binds).
fn check_listen(path: &str, addr: &str) -> Checked {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| {
            (
                path.to_string(),
                format!(
                    "`{addr}` is not an IP address with a port, e.g. 0.0.0.0:8888 or [::]:8888"
                ),
            )
        })
}

#[cfg(test)]
mod tests;
