//! `telemetry`: where Kepler power comes from and how fresh it must be.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, MAX_PERIOD_S, field, positive};

/// Telemetry settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelemetryConfig {
    /// Prometheus or Thanos Query connection and Kepler schema settings (required unless
    /// `ecoplace serve --demo`).
    pub prometheus: Option<kepler_client::PrometheusConfig>,
    /// The Kepler metrics' cluster label value for this cluster (multi-cluster Thanos);
    /// empty: the single cluster Prometheus reports.
    pub cluster: String,
    /// How often telemetry is refreshed, seconds.
    pub refresh_seconds: f64,
    /// Telemetry older than this makes the extender fail open, seconds.
    pub stale_after_seconds: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            prometheus: None,
            cluster: String::new(),
            refresh_seconds: 30.0,
            stale_after_seconds: 300.0,
        }
    }
}

impl TelemetryConfig {
    /// Semantic checks; the field path below `telemetry`.
    pub fn check(&self) -> Checked {
        if let Some(Err((f, r))) = self.prometheus.as_ref().map(|p| p.check()) {
            return field(&format!("prometheus.{f}"), r.into());
        }
        // Periods become `Duration`s: bounded, so that no value can overflow one.
        if !(positive(self.refresh_seconds) && self.refresh_seconds <= MAX_PERIOD_S) {
            return field(
                "refreshSeconds",
                format!("must be positive and at most {MAX_PERIOD_S} (a day)"),
            );
        }
        if !positive(self.stale_after_seconds) {
            return field("staleAfterSeconds", "must be positive".into());
        }
        if self.stale_after_seconds < self.refresh_seconds {
            return field(
                "staleAfterSeconds",
                format!(
                    "{} is below telemetry.refreshSeconds ({}): every snapshot would turn stale before the next refresh and decisions fail open (telemetry_stale)",
                    self.stale_after_seconds, self.refresh_seconds
                ),
            );
        }
        Ok(())
    }
}
