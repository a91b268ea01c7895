//! One shutdown signal for every long-running verb (`serve`, `ocm-scores`,
//! `rebalance --nodes --execute`): SIGTERM, which is how Kubernetes stops a pod, or SIGINT
//! (Ctrl-C).
//!
//! On the first signal a verb stops accepting work, lets what is in flight finish for at
//! most [`GRACE`], releases its OCM Lease (at most [`RELEASE_TIMEOUT`]) and exits 0. A
//! second signal exits at once (status 130), and [`HARD_LIMIT`] after the first one the
//! process exits with status 1 whatever still runs (a start-up waiting on an unreachable
//! apiserver, say), so it never outlives the pod's `terminationGracePeriodSeconds` (not
//! set in manifests/base/deployment.yaml: Kubernetes' default, 30 s).
//!
//! A leaf: it imports nothing else in the crate.

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long in-flight calls may take to finish once shutdown is requested.
pub const GRACE: Duration = Duration::from_secs(10);

/// How long releasing the OCM Lease may take at shutdown.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// After the first signal the process exits (status 1) at the latest after this long.
pub const HARD_LIMIT: Duration = Duration::from_secs(20);

/// Whether, and why, shutdown was requested; cheap to clone, every clone sees the request.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<&'static str>>,
    grace: Duration,
}

/// Requests a [`Shutdown`] by hand (tests, or a caller stopping a verb itself).
#[derive(Debug)]
pub struct Trigger(watch::Sender<Option<&'static str>>);

impl Trigger {
    /// Requests shutdown, saying why (`"SIGTERM"`); later requests keep the first reason.
    pub fn request(&self, why: &'static str) {
        self.0.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(why);
            }
            first
        });
    }
}

impl Shutdown {
    /// A shutdown only `Trigger` requests, with `grace` for in-flight calls.
    pub fn manual(grace: Duration) -> (Trigger, Self) {
        let (tx, rx) = watch::channel(None);
        (Trigger(tx), Self { rx, grace })
    }

    /// Installs the SIGTERM and SIGINT handlers: the first signal requests shutdown, a
    /// second exits at once, and [`HARD_LIMIT`] after the first the process exits.
    pub fn on_signals() -> std::io::Result<Self> {
        let (trigger, shutdown) = Self::manual(GRACE);
        let mut signals = Signals::install()?;
        tokio::spawn(async move {
            let first = signals.next().await;
            tracing::info!(
                signal = first,
                grace_s = GRACE.as_secs(),
                "shutting down: no new calls; in-flight ones may finish"
            );
            trigger.request(first);
            tokio::select! {
                again = signals.next() => {
                    tracing::warn!(signal = again, "second signal: exiting at once");
                    std::process::exit(130);
                }
                () = tokio::time::sleep(HARD_LIMIT) => {
                    tracing::error!(
                        signal = first,
                        "still running {} s after the signal: exiting",
                        HARD_LIMIT.as_secs()
                    );
                    std::process::exit(1);
                }
            }
        });
        Ok(shutdown)
    }

    /// Grace period of in-flight calls.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Why shutdown was requested, if it was.
    pub fn reason(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    /// Resolves (with the reason) once shutdown is requested; never if it cannot be.
    pub async fn requested(&self) -> &'static str {
        let mut rx = self.rx.clone();
        let why = rx.wait_for(Option::is_some).await.map(|r| *r);
        match why {
            Ok(Some(why)) => why,
            _ => std::future::pending().await,
        }
    }

    /// [`Shutdown::requested`] as an owned future (what `with_graceful_shutdown` takes).
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let me = self.clone();
        async move {
            me.requested().await;
        }
    }

    /// Runs `server`, which must stop accepting on [`Shutdown::signal`]; once shutdown is
    /// requested, waits at most the grace period for its in-flight calls, then gives up on
    /// them. `what` names the listener in the logs.
    pub async fn drain<F>(&self, what: &str, server: F) -> std::io::Result<()>
    where
        F: IntoFuture<Output = std::io::Result<()>>,
    {
        let server = server.into_future();
        tokio::pin!(server);
        tokio::select! {
            done = &mut server => return done,
            _ = self.requested() => {}
        }
        let since = Instant::now();
        match tokio::time::timeout(self.grace, &mut server).await {
            Ok(done) => {
                tracing::info!(
                    listener = what,
                    drained_ms = since.elapsed().as_millis() as u64,
                    "listener stopped, in-flight calls finished"
                );
                done
            }
            Err(_) => {
                tracing::warn!(
                    listener = what,
                    "calls still in flight after the {} s grace period: closing them",
                    self.grace.as_secs()
                );
                Ok(())
            }
        }
    }
}

/// The signals that stop a verb.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_every_clone_sees_it() {
        let (trigger, shutdown) = Shutdown::manual(Duration::from_millis(50));
        let other = shutdown.clone();
        assert_eq!(shutdown.reason(), None);
        let waiting = tokio::spawn(async move { other.requested().await });
        trigger.request("SIGTERM");
        trigger.request("SIGINT");
        assert_eq!(waiting.await.unwrap(), "SIGTERM");
        assert_eq!(shutdown.reason(), Some("SIGTERM"));
        // Already requested: resolves at once.
        assert_eq!(shutdown.requested().await, "SIGTERM");
    }

    #[tokio::test]
    async fn drain_waits_for_in_flight_work_within_the_grace_period() {
        let (trigger, shutdown) = Shutdown::manual(Duration::from_millis(500));
        let stop = shutdown.signal();
        // A "server" that needs 100 ms after the signal to finish its last call.
        let server = async move {
            stop.await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<(), std::io::Error>(())
        };
        trigger.request("SIGTERM");
        let began = Instant::now();
        shutdown.drain("test", server).await.unwrap();
        assert!(began.elapsed() >= Duration::from_millis(100));

        // One that never finishes is given up on after the grace period.
        let (trigger, shutdown) = Shutdown::manual(Duration::from_millis(200));
        trigger.request("SIGINT");
        let began = Instant::now();
        shutdown
            .drain("test", std::future::pending::<std::io::Result<()>>())
            .await
            .unwrap();
        let took = began.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
