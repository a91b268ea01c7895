//! Leader election on a `coordination.k8s.io/v1` Lease with the `kube-lease-manager` crate:
//! every replica runs a manager with its own identity; the one holding the Lease publishes.
//!
//! Semantics (the crate's): the holder renews `renewBeforeSeconds` before the Lease's
//! `durationSeconds` run out; another replica takes an expired Lease over. A replica that
//! stops (dropping [`Leadership`]) releases the Lease so a peer takes over at once; one that
//! dies stops renewing and a peer takes over after at most `durationSeconds`.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LeaseConfig;

/// A running election: whether this replica leads, and the task renewing the Lease.
#[derive(Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Joins the election on Lease `config.name` in `namespace` as `identity`.
    pub async fn join(
        client: Client,
        config: &LeaseConfig,
        namespace: &str,
        identity: &str,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &config.name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(config.duration_seconds)
            .with_grace(config.renew_before_seconds)
            .with_field_manager(format!("ecoplace-{identity}"))
            .build()
            .await?;
        let (rx, task) = manager.watch().await;
        Ok(Self { rx, task })
    }

    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// A receiver that changes when leadership is won or lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Stops renewing without releasing the Lease (a crashed replica); peers take over
    /// once it expires.
    pub fn abandon(self) {
        self.task.abort();
    }
}

/// This replica's identity: `POD_NAME`, else `HOSTNAME`, else the process id.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("ecoplace-{}", std::process::id()))
}
