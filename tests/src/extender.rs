//! The extender's configuration against a test Prometheus (the extender test and
//! `reliability-server` share it).

use anyhow::{Context as _, Result};
use scheduler::config::Config;

/// Telemetry from `prom_url`, refreshed every second, stale after `stale_s`; a Prometheus
/// query times out after `timeout_s`; DE/FR/GB clusters with static intensities.
pub fn extender_config(prom_url: &str, timeout_s: f64, stale_s: f64) -> Result<Config> {
    let yaml = format!(
        r#"
telemetry:
  prometheus:
    url: {prom_url}
    timeoutSeconds: {timeout_s}
    retries: 1
    backoffMs: 50
    lookbackSeconds: 30
    rateWindowSeconds: 10
    staleAfterSeconds: 15.0
  refreshSeconds: 1
  staleAfterSeconds: {stale_s}
topology:
  carbonZones: {{de: DE, fr: FR, gb: GB}}
carbon:
  staticGPerKwh: {{DE: 420, FR: 70, GB: 350}}
"#
    );
    Config::parse(&yaml, "extender-test.yaml").context("extender test config")
}
