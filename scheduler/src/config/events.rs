//! `events`: the Kubernetes Events ecoplace writes on pods, and their rate limits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field};

/// Kubernetes Events on the pods ecoplace decides for (events.k8s.io/v1), rate-limited.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EventsConfig {
    /// Write events at all (`EcoplaceAnnotationIgnored` warnings).
    pub enabled: bool,
    /// Also write one `EcoplacePreferred` event per scheduled pod saying why.
    pub explain: bool,
    /// Minimum time between two events of the same reason on the same pod, seconds.
    pub min_interval_seconds: f64,
    /// Overall cap on events written, per second.
    pub max_per_second: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            explain: false,
            min_interval_seconds: 300.0,
            max_per_second: 10.0,
        }
    }
}

/// Longest `events.minIntervalSeconds` accepted (a week).
const MAX_EVENT_INTERVAL_S: f64 = 7.0 * 86_400.0;
/// Slowest `events.maxPerSecond` accepted (one event every 1 000 s).
const MIN_EVENT_RATE: f64 = 0.001;

impl EventsConfig {
    /// Semantic checks; the field path below `events`.
    pub fn check(&self) -> Checked {
        if !(self.min_interval_seconds.is_finite()
            && (0.0..=MAX_EVENT_INTERVAL_S).contains(&self.min_interval_seconds))
        {
            return field(
                "minIntervalSeconds",
                format!(
                    "{} is not a number of seconds in 0..={MAX_EVENT_INTERVAL_S}",
                    self.min_interval_seconds
                ),
            );
        }
        if !(self.max_per_second.is_finite() && self.max_per_second >= MIN_EVENT_RATE) {
            return field(
                "maxPerSecond",
                format!(
                    "{} must be a rate of at least {MIN_EVENT_RATE} per second",
                    self.max_per_second
                ),
            );
        }
        Ok(())
    }
}
