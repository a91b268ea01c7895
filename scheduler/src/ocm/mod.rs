//! Open Cluster Management: the `AddOnPlacementScore` publisher. Every period it reads the
//! hub's `ManagedCluster`s, scores each available cluster with fresh telemetry (carbon,
//! energy, latency per user region and a combined `ecoplace` score, −100..=100) and writes
//! the scores into each cluster's namespace; one replica publishes, chosen by a Lease.
//!
//! [`crd`] has the OCM types, [`scores`] the pure cluster → score mapping, [`publisher`]
//! the apiserver writes and the loop, [`leader`] the Lease glue.

pub mod crd;
pub mod leader;
pub mod metrics;
pub mod publisher;
pub mod scores;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The OCM score publisher (`ocm` in ecoplace.yaml).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OcmConfig {
    /// Publish `AddOnPlacementScore`s on the hub (`ecoplace serve` runs the publisher too).
    pub enabled: bool,
    /// Name of the `AddOnPlacementScore` in each cluster namespace (a Placement's
    /// `scoreCoordinate.addOn.resourceName`).
    pub score_resource_name: String,
    /// Seconds between two publications; scores are valid for two periods.
    pub period_seconds: u64,
    /// ManagedCluster label whose value keys `topology.carbonZones` and `topology.latencyMs`.
    pub region_label: String,
    /// User regions with a `latency-<region>` score each (keys of `topology.latencyMs` rows).
    pub user_regions: Vec<String>,
    /// Weights preset of the combined `ecoplace` score; `policy.objective` when absent.
    pub objective: Option<String>,
    /// CPU cores of the reference replica the scores price (energy and carbon per replica).
    pub reference_cpu_cores: f64,
    /// Leader election: the `coordination.k8s.io/v1` Lease several replicas share.
    pub lease: LeaseConfig,
}

impl Default for OcmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            score_resource_name: "ecoplace".into(),
            period_seconds: 60,
            region_label: "region".into(),
            user_regions: Vec::new(),
            objective: None,
            reference_cpu_cores: 1.0,
            lease: LeaseConfig::default(),
        }
    }
}

/// The Lease that elects the publishing replica.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace; the `POD_NAMESPACE` environment variable when absent.
    pub namespace: Option<String>,
    /// Seconds a holder keeps the Lease without renewing it.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub renew_before_seconds: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            name: "ecoplace-ocm-scores".into(),
            namespace: None,
            duration_seconds: 15,
            renew_before_seconds: 5,
        }
    }
}

impl OcmConfig {
    /// Semantic checks; `(field path below ocm, reason)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        let field = |p: &str, r: String| Err((p.to_string(), r));
        if !is_dns_subdomain(&self.score_resource_name) {
            return field(
                "scoreResourceName",
                format!("`{}` is not a DNS subdomain name", self.score_resource_name),
            );
        }
        if self.period_seconds == 0 {
            return field("periodSeconds", "must be positive".into());
        }
        if !(self.reference_cpu_cores.is_finite() && self.reference_cpu_cores > 0.0) {
            return field(
                "referenceCpuCores",
                "must be a positive number of cores".into(),
            );
        }
        if let Some(o) = &self.objective {
            optimizer::Weights::preset(o).map_err(|e| ("objective".to_string(), e.to_string()))?;
        }
        if self.lease.duration_seconds == 0
            || self.lease.renew_before_seconds >= self.lease.duration_seconds
        {
            return field(
                "lease",
                format!(
                    "need 0 ≤ renewBeforeSeconds < durationSeconds, got {} and {}",
                    self.lease.renew_before_seconds, self.lease.duration_seconds
                ),
            );
        }
        for r in &self.user_regions {
            if !scores::is_score_name_part(r) {
                return field(
                    "userRegions",
                    format!("`{r}` must be letters, digits, `-`, `_` or `.`"),
                );
            }
        }
        Ok(())
    }
}

/// Whether `s` is a lowercase RFC 1123 subdomain (an object name).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Inputs of a running publisher, shared with `serve` when both run in one process.
pub struct Inputs {
    /// Hub apiserver client.
    pub client: kube::Client,
    /// Kepler telemetry.
    pub refresher: std::sync::Arc<kepler_client::Refresher>,
    /// Grid carbon intensity.
    pub carbon: std::sync::Arc<dyn kepler_client::carbon::CarbonIntensitySource>,
    /// Configuration.
    pub config: std::sync::Arc<crate::config::Config>,
    /// Clock.
    pub clock: kepler_client::refresher::Clock,
    /// Metrics.
    pub metrics: metrics::OcmMetrics,
}

/// A running publisher and this replica's place in the Lease election.
#[derive(Debug)]
pub struct Publishing {
    leadership: leader::Leadership,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Publishing {
    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Stops publishing (a round in flight may finish within `grace`), then releases the
    /// Lease (within `release_timeout`) so that a peer takes over at once. Dropping a
    /// `Publishing` instead stops the publisher and starts the release without awaiting it.
    pub async fn stop(self, grace: std::time::Duration, release_timeout: std::time::Duration) {
        let Self {
            leadership,
            stop,
            mut task,
        } = self;
        let _ = stop.send(());
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(
                "OCM publisher: round still running after {} s: cut",
                grace.as_secs()
            );
            task.abort();
            let _ = task.await;
        }
        let began = std::time::Instant::now();
        match tokio::time::timeout(release_timeout, leadership.release()).await {
            Ok(Ok(())) => tracing::info!(
                took_ms = began.elapsed().as_millis() as u64,
                "OCM Lease released: a peer can take over at once"
            ),
            Ok(Err(e)) => {
                tracing::warn!("OCM Lease not released ({e}): peers take it over once it expires")
            }
            Err(_) => tracing::warn!(
                "OCM Lease not released within {} s: peers take it over once it expires",
                release_timeout.as_secs()
            ),
        }
    }
}

/// Joins the Lease election (`ocm.lease`; namespace from the config or `POD_NAMESPACE`)
/// and starts the publisher loop; it runs until the returned [`Publishing`] is stopped or
/// dropped.
pub async fn spawn(inputs: Inputs) -> anyhow::Result<Publishing> {
    use anyhow::Context;
    let lease = &inputs.config.ocm.lease;
    let namespace = lease
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|n| !n.is_empty())
        .context("ocm.lease.namespace: not set and no POD_NAMESPACE in the environment")?;
    let identity = leader::identity();
    let leadership = leader::Leadership::join(inputs.client.clone(), lease, &namespace, &identity)
        .await
        .with_context(|| format!("joining Lease {namespace}/{}", lease.name))?;
    tracing::info!(%identity, lease = %lease.name, %namespace, "OCM score publisher started");
    let publisher = publisher::Publisher {
        client: inputs.client,
        refresher: inputs.refresher,
        carbon: inputs.carbon,
        config: inputs.config,
        clock: inputs.clock,
        power: std::sync::Arc::new(optimizer::power::CurvePowerModel::new()),
        metrics: inputs.metrics,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(publisher.run_until(leadership.subscribe(), async move {
        let _ = stopped.await;
    }));
    Ok(Publishing {
        leadership,
        stop,
        task,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::config::Config;

    fn err(yaml: &str) -> String {
        Config::parse(yaml, "t.yaml").unwrap_err().to_string()
    }

    #[test]
    fn ocm_section_is_checked_with_field_paths() {
        let ok = Config::parse("ocm: {enabled: true, userRegions: [eu-west]}", "t.yaml").unwrap();
        assert!(ok.ocm.enabled);
        assert!(err("ocm: {scoreResourceName: Eco_Place}").contains("ocm.scoreResourceName"));
        assert!(err("ocm: {periodSeconds: 0}").contains("ocm.periodSeconds"));
        assert!(err("ocm: {objective: greenest}").contains("ocm.objective"));
        assert!(
            err("ocm: {lease: {durationSeconds: 5, renewBeforeSeconds: 5}}").contains("ocm.lease")
        );
        assert!(err("ocm: {userRegions: [\"a b\"]}").contains("ocm.userRegions"));
        assert!(err("ocm: {enable: true}").contains("enable"));
    }
}
