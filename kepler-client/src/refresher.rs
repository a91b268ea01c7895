//! Keeps the latest fleet snapshot fresh in the background and publishes it.
//!
//! Readers (the extender's request path) only ever look at the published
//! [`TelemetryState`]; they never wait on I/O. On errors the last good snapshot stays
//! published, next to the error and the number of consecutive failures.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::snapshot::FleetSnapshot;
use crate::source::TelemetrySource;

/// A clock for the refresher (injectable so tests control time).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the refresher knows: the last good snapshot and how the last attempts went.
#[derive(Debug, Clone, Default)]
pub struct TelemetryState {
    /// The last successfully taken snapshot.
    pub snapshot: Option<Arc<FleetSnapshot>>,
    /// When the last refresh was attempted.
    pub last_attempt: Option<DateTime<Utc>>,
    /// The error of the last attempt, if it failed.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Successful refreshes so far.
    pub refreshes: u64,
}

impl TelemetryState {
    /// Seconds since the published snapshot was taken; `None` before the first success.
    pub fn snapshot_age_s(&self, now: DateTime<Utc>) -> Option<f64> {
        self.snapshot.as_ref().map(|s| s.age_s(now))
    }
}

/// A background task refreshing the snapshot every `interval`.
#[derive(Debug)]
pub struct Refresher {
    rx: watch::Receiver<Arc<TelemetryState>>,
    task: JoinHandle<()>,
}

impl Refresher {
    /// Starts refreshing now and then every `interval`, with the system clock.
    pub fn spawn(source: Arc<dyn TelemetrySource>, interval: Duration) -> Self {
        Self::spawn_with_clock(source, interval, Arc::new(Utc::now))
    }

    /// Like [`Refresher::spawn`] with an explicit clock. Each attempt is bounded by
    /// `interval` (or 1 s, whichever is larger) so a hung source cannot stall refreshes.
    pub fn spawn_with_clock(
        source: Arc<dyn TelemetrySource>,
        interval: Duration,
        clock: Clock,
    ) -> Self {
        let (tx, rx) = watch::channel(Arc::new(TelemetryState::default()));
        let bound = interval.max(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = clock();
                let outcome = tokio::time::timeout(bound, source.snapshot(now)).await;
                let mut next = TelemetryState::clone(&tx.borrow());
                next.last_attempt = Some(now);
                match outcome {
                    Ok(Ok(snap)) => {
                        next.snapshot = Some(Arc::new(snap));
                        next.last_error = None;
                        next.consecutive_failures = 0;
                        next.refreshes += 1;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, source = %source.describe(), "telemetry refresh failed; keeping last snapshot");
                        next.last_error = Some(e.to_string());
                        next.consecutive_failures += 1;
                    }
                    Err(_) => {
                        let msg = format!("refresh did not finish within {bound:?}");
                        tracing::warn!(source = %source.describe(), "{msg}");
                        next.last_error = Some(msg);
                        next.consecutive_failures += 1;
                    }
                }
                if tx.send(Arc::new(next)).is_err() {
                    break; // every receiver is gone
                }
            }
        });
        Self { rx, task }
    }

    /// A receiver that sees every published state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<TelemetryState>> {
        self.rx.clone()
    }

    /// The state published last (never blocks).
    pub fn latest(&self) -> Arc<TelemetryState> {
        self.rx.borrow().clone()
    }

    /// Waits until at least one refresh attempt has finished.
    pub async fn first_attempt(&self) -> Arc<TelemetryState> {
        let mut rx = self.rx.clone();
        let state = rx.wait_for(|s| s.last_attempt.is_some()).await;
        match state {
            Ok(s) => s.clone(),
            Err(_) => self.latest(),
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TelemetryError;
    use async_trait::async_trait;
    use chrono::TimeZone;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Succeeds on the first call, then fails.
    struct Flaky {
        fleet: crate::SimulatedFleet,
        calls: AtomicU32,
    }

    #[async_trait]
    impl TelemetrySource for Flaky {
        async fn snapshot(&self, now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                self.fleet.snapshot(now).await
            } else {
                Err(TelemetryError::Unreachable {
                    url: "http://x".into(),
                    message: "connection refused".into(),
                })
            }
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_last_good_snapshot_and_records_errors() {
        let t0 = Utc.with_ymd_and_hms(2020, 3, 2, 12, 0, 0).unwrap();
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        let clock: Clock = Arc::new(move || {
            t0 + chrono::Duration::seconds(i64::from(t.fetch_add(1, Ordering::SeqCst)) * 30)
        });
        let source = Arc::new(Flaky {
            fleet: crate::SimulatedFleet::embedded(1),
            calls: AtomicU32::new(0),
        });
        let r = Refresher::spawn_with_clock(source, Duration::from_secs(30), clock);
        let first = r.first_attempt().await;
        assert!(first.snapshot.is_some());
        let mut rx = r.subscribe();
        let s = rx
            .wait_for(|s| s.consecutive_failures >= 2)
            .await
            .unwrap()
            .clone();
        assert_eq!(
            s.snapshot.as_ref().unwrap().taken_at,
            t0,
            "last good snapshot kept"
        );
        assert!(
            s.last_error
                .as_deref()
                .unwrap()
                .contains("connection refused")
        );
        assert_eq!(
            s.snapshot_age_s(t0 + chrono::Duration::seconds(60)),
            Some(60.0)
        );
    }
}
