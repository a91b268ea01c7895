//! Kubernetes Events on the pods ecoplace decides for (events.k8s.io/v1): malformed
//! annotations (`EcoplaceAnnotationIgnored`) and, when asked, why a node was preferred
//! (`EcoplacePreferred`). Publishing never blocks a request: events go through a bounded
//! queue to a background writer that rate-limits them per pod and overall.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::decide::Verdict;
use super::metrics::EventMetrics;
use super::wire::Meta;
use crate::config::EventsConfig;
use crate::fleet::policy::AnnotationWarning;

/// Reason of the warning written when a pod's `ecoplace.io/*` annotation is ignored.
pub const ANNOTATION_IGNORED: &str = "EcoplaceAnnotationIgnored";
/// Reason of the event saying which node ecoplace preferred and what it saves.
pub const PREFERRED: &str = "EcoplacePreferred";
/// The reporting controller named in every event.
pub const CONTROLLER: &str = "ecoplace";

/// Longest event note the API accepts, bytes.
const MAX_NOTE_BYTES: usize = 1024;
/// How long one event write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the extender sends pod events; `publish` must never block.
pub trait EventSink: Send + Sync {
    /// Queues `event` for writing (or drops it); returns at once.
    fn publish(&self, event: PodEvent);
}

/// Event severity, as `kubectl describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Information.
    Normal,
    /// Something the pod's owner should fix.
    Warning,
}

/// One event about one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID (empty when the request did not carry one).
    pub uid: String,
    /// Severity.
    pub kind: EventKind,
    /// Machine-readable reason (`EcoplaceAnnotationIgnored`, `EcoplacePreferred`).
    pub reason: &'static str,
    /// Human-readable note (at most 1 KiB).
    pub note: String,
}

impl PodEvent {
    /// The warning for a pod's malformed annotations (all of them in one note), if any.
    pub fn annotations_ignored(pod: &Meta, warnings: &[AnnotationWarning]) -> Option<Self> {
        if warnings.is_empty() {
            return None;
        }
        let mut note = warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        note.push_str("; defaults apply");
        Some(Self::new(pod, EventKind::Warning, ANNOTATION_IGNORED, note))
    }

    /// The explanation of a prioritize decision: the preferred node and the carbon it
    /// saves against the median passing node.
    pub fn preferred(pod: &Meta, best: &Verdict, avoided_g: f64) -> Self {
        let u = best.units.unwrap_or_default();
        let note = format!(
            "ecoplace preferred {}: −{avoided_g:.1} gCO2e over the pod's expected lifetime vs the median passing node (score {}; energy {:.1} Wh, carbon {:.1} g)",
            best.name, best.score, u.energy_wh, u.carbon_g
        );
        Self::new(pod, EventKind::Normal, PREFERRED, note)
    }

    fn new(pod: &Meta, kind: EventKind, reason: &'static str, note: String) -> Self {
        Self::about(&pod.namespace, &pod.name, &pod.uid, kind, reason, note)
    }

    /// An event about the pod `namespace/name` with `uid` (the note cut to 1 KiB).
    pub fn about(
        namespace: &str,
        name: &str,
        uid: &str,
        kind: EventKind,
        reason: &'static str,
        note: String,
    ) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            kind,
            reason,
            note: truncate(note, MAX_NOTE_BYTES),
        }
    }

    /// The pod this event is about.
    fn regarding(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: (!self.uid.is_empty()).then(|| self.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// The pod's identity for rate limiting: its UID, else `namespace/name`.
    fn pod_key(&self) -> String {
        if self.uid.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            self.uid.clone()
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// A sink that drops every event (the demo, tests, `events.enabled: false`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn publish(&self, _event: PodEvent) {}
}

/// How [`KubeEvents`] queues, limits and signs events.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Minimum time between two events of the same reason on the same pod.
    pub min_interval: Duration,
    /// Overall cap, events per second (also the burst size, at least 1).
    pub max_per_second: f64,
    /// Events waiting to be written before new ones are dropped.
    pub queue: usize,
    /// `reportingInstance`: this replica's name.
    pub instance: String,
}

impl EventOptions {
    /// Options from the `events` config section; the instance is `$POD_NAME`, else
    /// `$HOSTNAME` (the pod's name in a cluster), else `ecoplace`.
    pub fn from_config(config: &EventsConfig) -> Self {
        let instance = ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|h| !h.trim().is_empty()))
            .unwrap_or_else(|| CONTROLLER.to_string());
        Self {
            min_interval: Duration::try_from_secs_f64(config.min_interval_seconds)
                .unwrap_or(Duration::from_secs(300)),
            max_per_second: config.max_per_second,
            queue: 1024,
            instance,
        }
    }
}

/// Writes pod events to the apiserver from a background task.
#[derive(Debug, Clone)]
pub struct KubeEvents {
    tx: mpsc::Sender<PodEvent>,
    metrics: EventMetrics,
}

impl KubeEvents {
    /// Starts the writer on `client` (needs a Tokio runtime); results go to `metrics`.
    pub fn spawn(client: Client, options: EventOptions, metrics: EventMetrics) -> Self {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let reporter = Reporter {
            controller: CONTROLLER.into(),
            instance: Some(options.instance.clone()),
        };
        let writer = Writer {
            recorder: Recorder::new(client, reporter),
            limiter: PodLimiter::new(options.min_interval),
            bucket: TokenBucket::new(options.max_per_second, Instant::now()),
            metrics: metrics.clone(),
        };
        tokio::spawn(writer.run(rx));
        Self { tx, metrics }
    }
}

impl EventSink for KubeEvents {
    fn publish(&self, event: PodEvent) {
        if self.tx.try_send(event).is_err() {
            self.metrics.events_dropped.inc();
        }
    }
}

/// The background task: rate limits, then writes through a [`Recorder`].
struct Writer {
    recorder: Recorder,
    limiter: PodLimiter,
    bucket: TokenBucket,
    metrics: EventMetrics,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<PodEvent>) {
        while let Some(event) = rx.recv().await {
            if !self
                .limiter
                .admit(event.pod_key(), event.reason, Instant::now())
            {
                self.count("suppressed");
                continue;
            }
            let wait = self.bucket.take(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            self.write(&event).await;
        }
    }

    async fn write(&self, event: &PodEvent) {
        let ev = Event {
            type_: match event.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: event.reason.into(),
            note: Some(event.note.clone()),
            action: "Scheduling".into(),
            secondary: None,
        };
        let pod = format!("{}/{}", event.namespace, event.name);
        match tokio::time::timeout(
            WRITE_TIMEOUT,
            self.recorder.publish(&ev, &event.regarding()),
        )
        .await
        {
            Ok(Ok(())) => self.count("written"),
            Ok(Err(e)) => {
                self.count("failed");
                tracing::warn!(pod = %pod, reason = event.reason, "writing a Kubernetes Event failed: {e}");
            }
            Err(_) => {
                self.count("failed");
                tracing::warn!(pod = %pod, reason = event.reason, "writing a Kubernetes Event timed out after {WRITE_TIMEOUT:?}");
            }
        }
    }

    fn count(&self, result: &str) {
        self.metrics.events.with_label_values(&[result]).inc();
    }
}

/// At most one event per (pod, reason) per `min_interval`.
#[derive(Debug)]
struct PodLimiter {
    min_interval: Duration,
    last: HashMap<(String, &'static str), Instant>,
    prune_at: usize,
}

impl PodLimiter {
    const MIN_PRUNE: usize = 1024;

    fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last: HashMap::new(),
            prune_at: Self::MIN_PRUNE,
        }
    }

    /// Whether an event for `pod` with `reason` may be written at `now` (and if so, notes it).
    fn admit(&mut self, pod: String, reason: &'static str, now: Instant) -> bool {
        let key = (pod, reason);
        if let Some(t) = self.last.get(&key)
            && now.saturating_duration_since(*t) < self.min_interval
        {
            return false;
        }
        self.last.insert(key, now);
        if self.last.len() >= self.prune_at {
            let keep = self.min_interval;
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
            self.prune_at = (self.last.len() * 2).max(Self::MIN_PRUNE);
        }
        true
    }
}

/// An overall rate cap: `rate` tokens per second, bursts of up to `max(rate, 1)`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = rate.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now`; returns how long to wait before using it.
    fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::from_secs(1))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use optimizer::Objectives;

    fn meta(uid: &str) -> Meta {
        Meta {
            name: "web-1".into(),
            namespace: "shop".into(),
            uid: uid.into(),
            ..Meta::default()
        }
    }

    #[test]
    fn annotation_warnings_become_one_warning_naming_each() {
        assert_eq!(PodEvent::annotations_ignored(&meta("u1"), &[]), None);
        let w = |a, v: &str, r: &str| AnnotationWarning {
            annotation: a,
            value: v.into(),
            reason: r.into(),
        };
        let e = PodEvent::annotations_ignored(
            &meta("u1"),
            &[
                w(
                    "ecoplace.io/weights",
                    "carbon=lots",
                    "`lots` is not a number",
                ),
                w("ecoplace.io/skip", "maybe", "expected true or false"),
            ],
        )
        .expect("an event");
        assert_eq!((e.kind, e.reason), (EventKind::Warning, ANNOTATION_IGNORED));
        assert_eq!(
            e.note,
            "annotation ecoplace.io/weights=\"carbon=lots\" ignored: `lots` is not a number; \
             annotation ecoplace.io/skip=\"maybe\" ignored: expected true or false; defaults apply"
        );
        let r = e.regarding();
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
        assert_eq!(e.pod_key(), "u1");
        assert_eq!(
            PodEvent {
                uid: String::new(),
                ..e
            }
            .pod_key(),
            "shop/web-1"
        );
    }

    #[test]
    fn preferred_note_names_node_and_savings() {
        let v = Verdict {
            name: "node-3",
            verbatim: true,
            known: true,
            reasons: Vec::new(),
            unresolvable: false,
            score: 10,
            units: Some(Objectives {
                energy_wh: 12.06,
                carbon_g: 3.44,
                ..Objectives::default()
            }),
        };
        let e = PodEvent::preferred(&meta(""), &v, 41.23);
        assert_eq!(e.kind, EventKind::Normal);
        assert_eq!(
            e.note,
            "ecoplace preferred node-3: −41.2 gCO2e over the pod's expected lifetime vs the \
             median passing node (score 10; energy 12.1 Wh, carbon 3.4 g)"
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let s = truncate("é".repeat(600), MAX_NOTE_BYTES);
        assert!(s.len() <= MAX_NOTE_BYTES && s.ends_with('…'), "{}", s.len());
        assert_eq!(truncate("short".into(), 8), "short");
    }

    #[test]
    fn one_event_per_pod_and_reason_per_interval() {
        let t0 = Instant::now();
        let mut l = PodLimiter::new(Duration::from_secs(300));
        assert!(l.admit("u1".into(), ANNOTATION_IGNORED, t0));
        assert!(!l.admit(
            "u1".into(),
            ANNOTATION_IGNORED,
            t0 + Duration::from_secs(299)
        ));
        assert!(l.admit("u1".into(), PREFERRED, t0));
        assert!(l.admit("u2".into(), ANNOTATION_IGNORED, t0));
        assert!(l.admit(
            "u1".into(),
            ANNOTATION_IGNORED,
            t0 + Duration::from_secs(300)
        ));
    }

    #[test]
    fn limiter_forgets_old_pods() {
        let t0 = Instant::now();
        let mut l = PodLimiter::new(Duration::from_secs(1));
        for i in 0..PodLimiter::MIN_PRUNE - 1 {
            assert!(l.admit(format!("old-{i}"), PREFERRED, t0));
        }
        assert!(l.admit("new".into(), PREFERRED, t0 + Duration::from_secs(2)));
        assert_eq!(l.last.len(), 1);
        assert_eq!(l.prune_at, PodLimiter::MIN_PRUNE);
    }

    #[test]
    fn bucket_allows_bursts_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        let wait = b.take(t0);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // The 11th event is written after its wait; the next one is 0.1 s behind it.
        let wait = b.take(t0 + Duration::from_millis(100));
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        let mut slow = TokenBucket::new(0.5, t0);
        assert_eq!(slow.take(t0), Duration::ZERO);
        assert!((slow.take(t0).as_secs_f64() - 2.0).abs() < 1e-9);
    }
}
