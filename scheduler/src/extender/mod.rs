//! The kube-scheduler extender: wire format, pod policy, the fleet view and decisions.
//! HTTP lives in [`crate::server`]; this module turns a request body into a reply.

pub mod decide;
pub mod events;
pub mod fleet;
pub mod policy;
pub mod quantity;
pub mod sources;
pub mod watch_health;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use optimizer::PowerModel;
use serde::Serialize;

use crate::server::metrics::Metrics;
use decide::{Decision, decide};
use events::{EventSink, PodEvent};
use fleet::{FailOpen, FleetView};
use wire::{DecodeError, Request};

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
    metrics: Metrics,
    events: Arc<dyn EventSink>,
    deadline: Duration,
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
    /// An extender starting from `view`, writing pod events to `events`.
    pub fn new(
        view: FleetView,
        power: Arc<dyn PowerModel>,
        metrics: Metrics,
        events: Arc<dyn EventSink>,
        deadline: Duration,
    ) -> Self {
        Self {
            view: ArcSwap::from_pointee(view),
            power,
            metrics,
            events,
            deadline,
        }
    }

    /// Replaces the view (background updater).
    pub fn publish(&self, view: FleetView) {
        self.metrics.nodes_known.set(view.targets.len() as f64);
        let age = view.telemetry_age_s(view.inputs.built_at).unwrap_or(-1.0);
        self.metrics.telemetry_age.set(age);
        self.view.store(Arc::new(view));
    }

    /// The current view.
    pub fn view(&self) -> Arc<FleetView> {
        self.view.load_full()
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one call within the deadline: the JSON reply, or a 400 error body.
    pub async fn handle(
        self: &Arc<Self>,
        verb: Verb,
        body: axum::body::Bytes,
    ) -> Result<Vec<u8>, ErrorBody> {
        let started = Instant::now();
        let me = Arc::clone(self);
        let kept = body.clone();
        let work = tokio::task::spawn_blocking(move || me.answer(verb, &body));
        let result = match tokio::time::timeout(self.deadline, work).await {
            Ok(Ok(r)) => r,
            // The deadline passed or the decision panicked: every node passes, neutral
            // scores; the request body is decoded again only to list the candidates.
            Ok(Err(_)) => Err(Failure::Open(FailOpen::DecisionFailed)),
            Err(_) => Err(Failure::Open(FailOpen::Deadline)),
        };
        let reply = match result {
            Ok(bytes) => Ok(bytes),
            Err(Failure::Bad(e)) => Err(ErrorBody {
                error: e.to_string(),
            }),
            Err(Failure::Open(reason)) => {
                self.metrics
                    .fail_open
                    .with_label_values(&[reason.as_str()])
                    .inc();
                tracing::warn!(
                    verb = verb.as_str(),
                    reason = reason.as_str(),
                    "failing open: every node passes with a neutral score"
                );
                Self::fail_open_reply(verb, &kept, reason)
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

    /// Decodes, decides and encodes (runs on a blocking thread).
    fn answer(&self, verb: Verb, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let req = Request::decode(body).map_err(Failure::Bad)?;
        let view = self.view.load();
        let decision = decide(&view, &req, self.power.as_ref());
        self.account(verb, &req, &decision, view.inputs.config.events.explain);
        encode(verb, &decision, &req, body.len())
            .map_err(|_| Failure::Open(FailOpen::DecisionFailed))
    }

    /// Metrics, logs and pod events of one decision; `explain` adds an `EcoplacePreferred`
    /// event per prioritized pod. Annotation warnings go out from either verb (the event
    /// writer's rate limit dedups), explanations from prioritize only.
    fn account(&self, verb: Verb, req: &Request, d: &Decision, explain: bool) {
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
            if explain {
                self.events
                    .publish(PodEvent::preferred(&req.pod.metadata, best, avoided));
            }
        }
    }

    /// The reply when failing open on a request that could not be decided (in time).
    pub fn fail_open_reply(
        verb: Verb,
        body: &[u8],
        reason: FailOpen,
    ) -> Result<Vec<u8>, ErrorBody> {
        let req = Request::decode(body).map_err(|e| ErrorBody {
            error: e.to_string(),
        })?;
        let d = Decision::fail_open(&req, reason);
        encode(verb, &d, &req, body.len()).map_err(|e| ErrorBody {
            error: e.to_string(),
        })
    }
}

/// The JSON reply to `verb`, written into a buffer sized from the request (names come
/// back once each; a filter reply on full Nodes is about as large as the request).
fn encode(
    verb: Verb,
    d: &Decision<'_>,
    req: &Request<'_>,
    request_len: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = Vec::with_capacity(request_len.min(1 << 26) + 64 * d.verdicts.len());
    match verb {
        Verb::Filter => serde_json::to_writer(&mut buf, &d.filter_result(req))?,
        Verb::Prioritize => d.write_priorities(&mut buf)?,
    }
    Ok(buf)
}

/// Why `answer` produced no reply.
enum Failure {
    /// Bad input: 400.
    Bad(DecodeError),
    /// Fail open.
    Open(FailOpen),
}
