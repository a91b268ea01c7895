//! Open Cluster Management: the `AddOnPlacementScore` publisher. Every period it reads the
//! hub's `ManagedCluster`s, scores each available cluster with fresh telemetry (carbon,
//! energy, latency per user region and a combined `ecoplace` score, −100..=100) and writes
//! the scores into each cluster's namespace; one replica publishes, chosen by a Lease.
//!
//! [`crd`] has the OCM types, [`scores`] the pure cluster → score mapping, [`publisher`]
//! the apiserver writes and the loop; `crate::lease` elects the publishing replica. It may
//! import `config`, `fleet` (quantities, carbon outlooks, the carbon gauges) and `lease`.

pub mod crd;
pub mod metrics;
pub mod publisher;
pub mod scores;

use crate::config::{Config, NodeProfile, OcmConfig, PolicyConfig, TopologyConfig};

/// The configuration the publisher reads, taken from the whole `Config` once.
#[derive(Debug, Clone)]
pub struct OcmSettings {
    /// The `ocm` section: score name, period, region label, user regions, Lease.
    pub ocm: OcmConfig,
    /// Carbon zones and latency by region.
    pub topology: TopologyConfig,
    /// Pod policy defaults (objective, user region, expected duration).
    pub policy: PolicyConfig,
    /// The power profile of a cluster's nodes (`power.defaultProfile`).
    pub node_profile: NodeProfile,
    /// Telemetry older than this is not scored, seconds.
    pub telemetry_stale_after_seconds: f64,
}

impl OcmSettings {
    /// The publisher's part of `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            ocm: config.ocm.clone(),
            topology: config.topology.clone(),
            policy: config.policy.clone(),
            node_profile: config.power.default_profile,
            telemetry_stale_after_seconds: config.telemetry.stale_after_seconds,
        }
    }
}

/// Inputs of a running publisher, shared with `serve` when both run in one process.
pub struct Inputs {
    /// Hub apiserver client.
    pub client: kube::Client,
    /// Kepler telemetry.
    pub refresher: std::sync::Arc<kepler_client::Refresher>,
    /// Grid carbon intensity.
    pub carbon: std::sync::Arc<dyn kepler_client::carbon::CarbonIntensitySource>,
    /// What the publisher reads of the configuration.
    pub settings: std::sync::Arc<OcmSettings>,
    /// Clock.
    pub clock: kepler_client::refresher::Clock,
    /// Metrics.
    pub metrics: metrics::OcmMetrics,
}

/// A running publisher and this replica's place in the Lease election.
#[derive(Debug)]
pub struct Publishing {
    leadership: crate::lease::Leadership,
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
    let lease = &inputs.settings.ocm.lease;
    let namespace = crate::lease::namespace(lease)
        .context("ocm.lease.namespace: not set and no POD_NAMESPACE in the environment")?;
    let identity = crate::lease::identity();
    let leadership =
        crate::lease::Leadership::join(inputs.client.clone(), lease, &namespace, &identity)
            .await
            .with_context(|| format!("joining Lease {namespace}/{}", lease.name))?;
    tracing::info!(%identity, lease = %lease.name, %namespace, "OCM score publisher started");
    let publisher = publisher::Publisher {
        client: inputs.client,
        refresher: inputs.refresher,
        carbon: inputs.carbon,
        settings: inputs.settings,
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
