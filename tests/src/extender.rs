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

/// POSTs `body` to the extender verb at `base` (`http://host:port`); the 200 reply as JSON.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    verb: &str,
    body: &str,
) -> Result<serde_json::Value> {
    let resp = client
        .post(format!("{base}/scheduler/{verb}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("POST {verb}"))?;
    anyhow::ensure!(resp.status() == 200, "POST {verb}: HTTP {}", resp.status());
    serde_json::from_str(&resp.text().await?).with_context(|| format!("{verb}: reply is not JSON"))
}
