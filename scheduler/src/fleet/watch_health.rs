//! Health of the fleet's Kubernetes watches (Nodes, Pods): whether each one is failing
//! and since when, so node facts that stopped updating are reported (`ecoplace_watch_up`,
//! `ecoplace_watch_errors_total`) and, past a grace period, make names-mode calls fail open.
//!
//! Signals: an error from the watcher stream starts (or continues) a failure; an object from
//! a list or watch ends it; so does a successful (2xx) list or watch response seen by
//! [`ObserveLayer`] on the client, once no error followed it for [`SETTLE`] — kube's
//! watcher re-establishes a watch silently (no event), and a watch that the apiserver
//! accepts and then cuts off at once must not count as recovered. A watch that simply ends
//! (server-side timeout) and is re-established is never an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{Method, Request, Response};
use kube::runtime::watcher;
use prometheus::{IntCounter, IntGauge};

use super::metrics::WatchMetrics;

/// How long a re-established watch must go without an error to count as recovered.
pub const SETTLE: Duration = Duration::from_millis(500);

/// A watch that has been failing, as the view updater sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchFailure {
    /// Which watch: `nodes` or `pods`.
    pub watch: &'static str,
    /// How long it has been failing.
    pub failing_for: Duration,
    /// The last error it reported.
    pub last_error: String,
}

#[derive(Debug, Default)]
struct State {
    failing_since: Option<Instant>,
    last_error_at: Option<Instant>,
    last_error: String,
    connected_at: Option<Instant>,
}

/// One watch's health, shared by its stream, the client layer and the view updater.
#[derive(Debug)]
pub struct WatchHealth {
    watch: &'static str,
    state: Mutex<State>,
    up: IntGauge,
    errors: IntCounter,
}

impl WatchHealth {
    /// A watch named `watch` (not up until its first list or watch succeeds).
    pub fn new(watch: &'static str, metrics: &WatchMetrics) -> Arc<Self> {
        let up = metrics.watch_up.with_label_values(&[watch]);
        up.set(0);
        Arc::new(Self {
            watch,
            state: Mutex::new(State::default()),
            up,
            errors: metrics.watch_errors.with_label_values(&[watch]),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one item of the watcher stream (before the reflector).
    pub fn observe<K>(&self, item: &Result<watcher::Event<K>, watcher::Error>) {
        match item {
            Err(e) => self.error(&e.to_string()),
            // `Init` is announced before the list call is made: it proves nothing.
            Ok(watcher::Event::Init) => {}
            Ok(_) => self.ok(),
        }
    }

    /// An object (or the end of a list) arrived: the watch delivers.
    pub fn ok(&self) {
        let mut s = self.state();
        s.failing_since = None;
        self.up.set(1);
    }

    /// The watch reported an error.
    pub fn error(&self, message: &str) {
        let now = Instant::now();
        let mut s = self.state();
        s.failing_since.get_or_insert(now);
        s.last_error_at = Some(now);
        s.last_error = message.to_string();
        self.errors.inc();
        self.up.set(0);
    }

    /// The apiserver answered a list or watch request of this resource with 2xx.
    pub fn connected(&self) {
        self.state().connected_at = Some(Instant::now());
    }

    /// The failure at `now`, if the watch is failing; also updates `ecoplace_watch_up`.
    pub fn failure(&self, now: Instant) -> Option<WatchFailure> {
        let mut s = self.state();
        let since = s.failing_since?;
        let recovered = match (s.connected_at, s.last_error_at) {
            (Some(c), Some(e)) => c > e && now.saturating_duration_since(c) >= SETTLE,
            (Some(c), None) => now.saturating_duration_since(c) >= SETTLE,
            (None, _) => false,
        };
        if recovered {
            s.failing_since = None;
            self.up.set(1);
            return None;
        }
        self.up.set(0);
        Some(WatchFailure {
            watch: self.watch,
            failing_for: now.saturating_duration_since(since),
            last_error: s.last_error.clone(),
        })
    }
}

/// A client layer telling each watch's [`WatchHealth`] when a GET of its resource path
/// (a list or a watch) gets a 2xx answer.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    watches: Arc<[(String, Arc<WatchHealth>)]>,
}

impl ObserveLayer {
    /// Observes GETs of each `(path, health)` (paths without query, e.g. `/api/v1/nodes`).
    pub fn new(watches: Vec<(String, Arc<WatchHealth>)>) -> Self {
        Self {
            watches: watches.into(),
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            watches: Arc::clone(&self.watches),
        }
    }
}

/// The service [`ObserveLayer`] wraps around the client's stack.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    watches: Arc<[(String, Arc<WatchHealth>)]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Observe<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let health = (req.method() == Method::GET)
            .then(|| {
                self.watches
                    .iter()
                    .find(|(path, _)| req.uri().path() == path)
                    .map(|(_, h)| Arc::clone(h))
            })
            .flatten();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await;
            if let (Some(h), Ok(r)) = (health, &resp)
                && r.status().is_success()
            {
                h.connected();
            }
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (Arc<WatchHealth>, WatchMetrics) {
        let registry = prometheus::Registry::new();
        let m = WatchMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
        (WatchHealth::new("nodes", &m), m)
    }

    #[test]
    fn errors_fail_until_an_object_arrives() {
        let (h, m) = health();
        let up = || m.watch_up.with_label_values(&["nodes"]).get();
        assert_eq!(up(), 0, "not up before the first list");
        h.ok();
        assert_eq!((h.failure(Instant::now()), up()), (None, 1));
        h.error("connection refused");
        h.error("connection refused");
        let f = h.failure(Instant::now() + Duration::from_secs(5));
        let f = f.unwrap_or_else(|| panic!("failing"));
        assert_eq!(
            (f.watch, f.last_error.as_str()),
            ("nodes", "connection refused")
        );
        assert!(f.failing_for >= Duration::from_secs(5), "{f:?}");
        assert_eq!(up(), 0);
        assert_eq!(m.watch_errors.with_label_values(&["nodes"]).get(), 2);
        h.ok();
        assert_eq!((h.failure(Instant::now()), up()), (None, 1));
    }

    #[test]
    fn init_proves_nothing() {
        let (h, _m) = health();
        h.error("410 Gone");
        h.observe::<()>(&Ok(watcher::Event::Init));
        assert!(h.failure(Instant::now()).is_some());
        h.observe::<()>(&Ok(watcher::Event::InitDone));
        assert!(h.failure(Instant::now()).is_none());
    }

    #[test]
    fn a_watch_accepted_after_the_error_recovers_once_it_settles() {
        let (h, _m) = health();
        h.error("stream closed");
        h.connected();
        let now = Instant::now();
        assert!(h.failure(now).is_some(), "not settled yet");
        assert!(h.failure(now + SETTLE).is_none(), "settled: recovered");
    }

    #[test]
    fn a_watch_cut_off_right_after_it_was_accepted_keeps_failing() {
        let (h, _m) = health();
        h.error("connection reset");
        h.connected();
        h.error("connection reset");
        let f = h.failure(Instant::now() + SETTLE * 4);
        assert!(f.is_some(), "the error came after the 2xx");
    }
}
