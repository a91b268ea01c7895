//! The kube-scheduler extender: the wire format, decisions on the current fleet view,
//! replies and pod Events. It turns a request body into a reply; HTTP lives in
//! `server`, the fleet view in `fleet`. It may import `config` and `fleet`.

pub mod decide;
pub mod events;
pub mod metrics;
pub mod reply;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use optimizer::PowerModel;
use serde::Serialize;

use crate::fleet::{FailOpen, FleetView};
use decide::{Decision, decide};
use events::{EventSink, PodEvent};
use metrics::ExtenderMetrics;
use reply::Reply;
use wire::{DecodeError, Echo, Request};

/// The two extender verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `POST {prefix}/filter`.
    Filter,
    /// `POST {prefix}/prioritize`.
    Prioritize,
}

impl Verb {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Prioritize => "prioritize",
        }
    }
}

/// The extender's part of the configuration, taken once.
#[derive(Debug, Clone, Copy)]
pub struct ExtenderSettings {
    /// Internal deadline per call (`extender.deadlineMs`).
    pub deadline: Duration,
    /// Write an `EcoplacePreferred` Event per prioritized pod (`events.explain`).
    pub explain: bool,
}

impl ExtenderSettings {
    /// The extender's part of `config`.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            deadline: Duration::from_millis(config.extender.deadline_ms),
            explain: config.events.explain,
        }
    }
}

/// The error body of a 400 reply.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What is wrong with the request.
    pub error: String,
}

/// Shared extender state: the current view, the power model, metrics and pod events.
pub struct Extender {
    view: ArcSwap<FleetView>,
    power: Arc<dyn PowerModel>,
    metrics: ExtenderMetrics,
    events: Arc<dyn EventSink>,
    deadline: Duration,
    explain: bool,
}

impl std::fmt::Debug for Extender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extender")
            .field("power", &self.power.name())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Extender {
    /// An extender starting from `view`, writing pod events to `events` (with an
    /// `EcoplacePreferred` explanation per prioritized pod when `explain`).
    pub fn new(
        view: FleetView,
        power: Arc<dyn PowerModel>,
        metrics: ExtenderMetrics,
        events: Arc<dyn EventSink>,
        settings: ExtenderSettings,
    ) -> Self {
        Self {
            view: ArcSwap::from_pointee(view),
            power,
            metrics,
            events,
            deadline: settings.deadline,
            explain: settings.explain,
        }
    }

    /// Replaces the view (the fleet view updater's publish callback).
    pub fn publish(&self, view: FleetView) {
        self.view.store(Arc::new(view));
    }

    /// The current view.
    pub fn view(&self) -> Arc<FleetView> {
        self.view.load_full()
    }

    /// Metrics.
    pub fn metrics(&self) -> &ExtenderMetrics {
        &self.metrics
    }

    /// Answers one call within the deadline: the JSON reply, or a 400 error body.
    ///
    /// The decision runs on a blocking thread. If it misses the deadline (or panics), the
    /// call fails open from what the decision learnt first — where the candidates sit in
    /// the body — so even a 55 MB body of full Node objects is answered at the deadline
    /// without being decoded again, and the abandoned decision stops at its next step.
    pub async fn handle(self: &Arc<Self>, verb: Verb, body: Bytes) -> Result<Reply, ErrorBody> {
        let started = Instant::now();
        let me = Arc::clone(self);
        let progress = Arc::new(Progress::default());
        let (request, seen) = (body.clone(), Arc::clone(&progress));
        let work = tokio::task::spawn_blocking(move || me.answer(verb, &request, &seen));
        let result = match tokio::time::timeout(self.deadline, work).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Failure::Open(FailOpen::DecisionFailed)),
            Err(_) => Err(Failure::Open(FailOpen::Deadline)),
        };
        let reply = match result {
            Ok(bytes) => Ok(bytes),
            Err(Failure::Bad(e)) => Err(ErrorBody {
                error: e.to_string(),
            }),
            Err(Failure::Open(reason)) => {
                progress.abandoned.store(true, Ordering::Relaxed);
                self.metrics
                    .fail_open
                    .with_label_values(&[reason.as_str()])
                    .inc();
                tracing::warn!(
                    verb = verb.as_str(),
                    reason = reason.as_str(),
                    "failing open: every node passes with a neutral score"
                );
                Self::fail_open_reply(verb, &body, progress.echo.get().cloned())
            }
        };
        let code = if reply.is_ok() { "200" } else { "400" };
        self.metrics
            .requests
            .with_label_values(&[verb.as_str(), code])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[verb.as_str()])
            .observe(started.elapsed().as_secs_f64());
        reply
    }

    /// Decodes, decides and encodes (runs on a blocking thread); tells `progress` where
    /// the candidates are as soon as it knows, and stops early once the call was answered
    /// without it.
    fn answer(&self, verb: Verb, body: &Bytes, progress: &Progress) -> Result<Reply, Failure> {
        let req = Request::decode_for(body, verb).map_err(Failure::Bad)?;
        if let Some(echo) = req.echo() {
            let _ = progress.echo.set(echo);
        }
        progress.check()?;
        let view = self.view.load();
        let decision = decide(&view, &req, self.power.as_ref());
        progress.check()?;
        self.account(verb, &req, &decision);
        let reply = match verb {
            Verb::Filter => decision.filter_reply(&req, body),
            Verb::Prioritize => {
                let mut out = Vec::with_capacity(64 * decision.verdicts.len());
                decision
                    .write_priorities(&mut out)
                    .map(|()| Reply::from(out))
            }
        };
        reply.map_err(|_| Failure::Open(FailOpen::DecisionFailed))
    }

    /// Metrics, logs and pod events of one decision; `events.explain` adds an `EcoplacePreferred`
    /// event per prioritized pod. Annotation warnings go out from either verb (the event
    /// writer's rate limit dedups), explanations from prioritize only.
    fn account(&self, verb: Verb, req: &Request, d: &Decision) {
        let m = &self.metrics;
        let outcome = match (d.fail_open, d.skipped) {
            (Some(reason), _) => {
                m.fail_open.with_label_values(&[reason.as_str()]).inc();
                tracing::warn!(pod = %req.pod.key(), verb = verb.as_str(), reason = reason.as_str(), "failing open: every node passes with a neutral score");
                "fail_open"
            }
            (None, true) => "skipped",
            (None, false) => "scored",
        };
        m.decisions
            .with_label_values(&[verb.as_str(), outcome])
            .inc();
        for w in &d.warnings {
            m.annotation_errors.with_label_values(&[w.annotation]).inc();
            tracing::warn!(pod = %req.pod.key(), "{w}");
        }
        if let Some(e) = PodEvent::annotations_ignored(&req.pod.metadata, &d.warnings) {
            self.events.publish(e);
        }
        if verb == Verb::Prioritize
            && let Some((best, avoided)) = d.best()
        {
            m.carbon_avoided.inc_by(avoided);
            let u = best.units.unwrap_or_default();
            tracing::info!(
                pod = %req.pod.key(),
                node = %best.name,
                score = best.score,
                energy_wh = u.energy_wh,
                carbon_g = u.carbon_g,
                latency_ms = u.latency_ms,
                carbon_avoided_g = avoided,
                "ecoplace preferred {}: −{avoided:.1} gCO2e over the pod's expected lifetime vs the median passing node",
                best.name
            );
            if self.explain {
                self.events
                    .publish(PodEvent::preferred(&req.pod.metadata, best, avoided));
            }
        }
    }

    /// The reply when failing open on a call that could not be decided (in time), from
    /// where its candidates sit (`echo`, if the decision got that far; else read now).
    pub fn fail_open_reply(
        verb: Verb,
        body: &Bytes,
        echo: Option<Echo>,
    ) -> Result<Reply, ErrorBody> {
        let error = |e: &dyn std::fmt::Display| ErrorBody {
            error: e.to_string(),
        };
        let echo = match echo {
            Some(echo) => echo,
            None => Echo::of(body).map_err(|e| error(&e))?,
        };
        reply::fail_open(verb, body, echo, decide::NEUTRAL_SCORE).map_err(|e| error(&e))
    }
}

/// What a decision running on a blocking thread shares with the call that waits for it.
#[derive(Debug, Default)]
struct Progress {
    /// Where full Node objects sit in the body, once decoded.
    echo: OnceLock<Echo>,
    /// Set when the call was answered without the decision (it failed open).
    abandoned: AtomicBool,
}

impl Progress {
    /// Stops an abandoned decision at its next step.
    fn check(&self) -> Result<(), Failure> {
        match self.abandoned.load(Ordering::Relaxed) {
            true => Err(Failure::Open(FailOpen::Deadline)),
            false => Ok(()),
        }
    }
}

/// Why `answer` produced no reply.
enum Failure {
    /// Bad input: 400.
    Bad(DecodeError),
    /// Fail open.
    Open(FailOpen),
}
