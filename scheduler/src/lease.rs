//! Leader election on a `coordination.k8s.io/v1` Lease with the `kube-lease-manager` crate,
//! shared by the OCM score publisher and the carbon-window controller: every replica runs a
//! manager with its own identity; the one holding the Lease acts. A leaf: it imports only
//! `config`.
//!
//! Semantics: the holder renews `renewBeforeSeconds` before the Lease's `durationSeconds`
//! run out; another replica takes an expired Lease over. A replica that stops calls
//! [`Leadership::release`], which clears the holder (the crate's strategic-merge PATCH
//! nulling `holderIdentity`, `acquireTime`, `renewTime` and `leaseDurationSeconds`) before
//! it returns. A replica that dies stops renewing and a peer takes over after at most
//! `durationSeconds`. Nothing is released on drop: a process that exits without awaiting
//! the release leaves a held Lease, like one that dies.
//!
//! The crate's waiting replicas read the Lease again only when the expiry they last saw
//! passes, so a released Lease would wait up to `durationSeconds` for a taker. The loop
//! here (`elect`) also re-reads it every [`RECHECK`] while not leading, so a peer takes
//! a released Lease over within about a second.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::LeaseConfig;

/// How often a replica that does not lead re-reads the Lease (to take a released one).
pub const RECHECK: Duration = Duration::from_secs(1);

/// A running election: whether this replica leads, and the task renewing the Lease.
#[derive(Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
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
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(elect(manager, tx, RECHECK, config.name.clone()));
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

    /// Releases the Lease if this replica holds it, and stops renewing; returns once the
    /// apiserver has the Lease without a holder. Every receiver from
    /// [`Leadership::subscribe`] must be dropped first (the election ends when the last
    /// one is), else this waits until they are.
    pub async fn release(self) -> Result<(), ReleaseError> {
        let Self { rx, task } = self;
        drop(rx);
        match task.await {
            Ok(Ok(_manager)) => Ok(()),
            Ok(Err(e)) => Err(ReleaseError::Lease(e)),
            Err(e) => Err(ReleaseError::Task(e)),
        }
    }

    /// Stops renewing without releasing the Lease (a crashed replica); peers take over
    /// once it expires.
    pub fn abandon(self) {
        self.task.abort();
    }
}

/// The election loop (what the crate's `LeaseManager::watch` does, plus [`RECHECK`]):
/// sends every change of leadership on `tx`; while not leading, re-reads the Lease every
/// `recheck` (the crate's `release` of a Lease it does not hold only re-reads it); when
/// every receiver is gone, releases the Lease and returns the manager.
async fn elect(
    manager: LeaseManager,
    tx: watch::Sender<bool>,
    recheck: Duration,
    name: String,
) -> Result<LeaseManager, LeaseManagerError> {
    let mut leading = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => {
                manager.release().await?;
                return Ok(manager);
            }
            changed = manager.changed() => match changed {
                Ok(now) => {
                    leading = now;
                    tx.send_if_modified(|was| std::mem::replace(was, now) != now);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(lease = %name, "Lease: {e} (retrying in {} s)", backoff.as_secs());
                    tokio::select! {
                        () = tx.closed() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
            () = tokio::time::sleep(recheck), if !leading => {
                if let Err(e) = manager.release().await {
                    tracing::debug!(lease = %name, "Lease: re-reading it: {e}");
                }
            }
        }
    }
}

/// Why [`Leadership::release`] could not release the Lease.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The apiserver refused or did not answer the release.
    #[error("releasing the Lease: {0}")]
    Lease(LeaseManagerError),
    /// The renewing task had already ended abnormally.
    #[error("the Lease renewing task ended: {0}")]
    Task(tokio::task::JoinError),
}

/// The Lease's namespace: `config.namespace`, else the `POD_NAMESPACE` environment
/// variable (the shipped manifests set it from the pod's namespace).
pub fn namespace(config: &LeaseConfig) -> Option<String> {
    config
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|n| !n.is_empty())
}

/// This replica's identity: `POD_NAME`, else `HOSTNAME`, else the process id.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("ecoplace-{}", std::process::id()))
}
