//! Carbon-aware time shifting in Kubernetes through scheduling gates: pods created with
//! the gate `ecoplace.io/carbon-window` wait (Pending, `SchedulingGated`) until the
//! cleanest forecast window before their deadline, then the controller removes the gate
//! and kube-scheduler places them as usual.
//!
//! [`hold`] is the pure part (annotations → window → plan), [`controller`] the watch, the
//! patches and the Events, [`metrics`] what it exports. It may import `config`, `fleet`
//! (carbon outlooks, pod requests), `extender` (the Event writer) and `lease`.

pub mod controller;
pub mod hold;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::refresher::Clock;

use crate::extender::events::EventSink;
use crate::lease::Leadership;
use controller::{Controller, WindowSettings};
use metrics::WindowMetrics;

/// What a running controller needs.
pub struct Inputs {
    /// The cluster's apiserver.
    pub client: kube::Client,
    /// Grid carbon intensity and forecasts.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// What it reads of the configuration.
    pub settings: Arc<WindowSettings>,
    /// The clock.
    pub clock: Clock,
    /// Where pod Events go.
    pub events: Arc<dyn EventSink>,
    /// Metrics.
    pub metrics: WindowMetrics,
}

/// A running controller and this replica's place in its Lease election.
#[derive(Debug)]
pub struct Gating {
    leadership: Leadership,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Gating {
    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Stops the controller (a round in flight may finish within `grace`), then releases
    /// the Lease (within `release_timeout`) so that a peer takes over at once. Held pods
    /// stay held: the peer reads their holds back from their annotations.
    pub async fn stop(self, grace: Duration, release_timeout: Duration) {
        let Self {
            leadership,
            stop,
            mut task,
        } = self;
        let _ = stop.send(());
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(
                "carbon window: round still running after {} s: cut",
                grace.as_secs()
            );
            task.abort();
            let _ = task.await;
        }
        match tokio::time::timeout(release_timeout, leadership.release()).await {
            Ok(Ok(())) => {
                tracing::info!("carbon-window Lease released: a peer can take over at once")
            }
            Ok(Err(e)) => tracing::warn!(
                "carbon-window Lease not released ({e}): peers take it over once it expires"
            ),
            Err(_) => tracing::warn!(
                "carbon-window Lease not released within {} s: peers take it over once it expires",
                release_timeout.as_secs()
            ),
        }
    }
}

/// Joins the Lease election (`carbonWindow.lease`; namespace from the config or
/// `POD_NAMESPACE`) and starts the controller; it runs until the returned [`Gating`] is
/// stopped or dropped.
pub async fn spawn(inputs: Inputs) -> anyhow::Result<Gating> {
    use anyhow::Context;
    let lease = &inputs.settings.lease;
    let namespace = crate::lease::namespace(lease)
        .context("carbonWindow.lease.namespace: not set and no POD_NAMESPACE in the environment")?;
    let identity = crate::lease::identity();
    let leadership = Leadership::join(inputs.client.clone(), lease, &namespace, &identity)
        .await
        .with_context(|| format!("joining Lease {namespace}/{}", lease.name))?;
    tracing::info!(%identity, lease = %lease.name, %namespace, "carbon-window controller joined its Lease");
    let controller = Controller {
        client: inputs.client,
        carbon: inputs.carbon,
        settings: inputs.settings,
        clock: inputs.clock,
        events: inputs.events,
        metrics: inputs.metrics,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run_until(leadership.subscribe(), async move {
        let _ = stopped.await;
    }));
    Ok(Gating {
        leadership,
        stop,
        task,
    })
}
