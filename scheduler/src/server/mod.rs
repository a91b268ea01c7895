//! The HTTP server: extender verbs, health, readiness and metrics (axum). Handlers only
//! translate HTTP to [`Extender`] and placement calls and back; `/metrics` renders the
//! registry it is given. It may import `config`, `fleet`, `extender` and `placement`.

pub mod metrics;
pub mod placement;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use prometheus::Registry;

use crate::extender::reply::Reply;
use crate::extender::{Extender, Verb};
use crate::fleet::FailOpen;

/// The router: `POST {prefix}/filter`, `POST {prefix}/prioritize`, and the probes.
pub fn router(
    extender: Arc<Extender>,
    registry: Registry,
    prefix: &str,
    max_body_bytes: usize,
) -> Router {
    Router::new()
        .route(&format!("{prefix}/filter"), post(filter))
        .route(&format!("{prefix}/prioritize"), post(prioritize))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::clone(&extender))
        .merge(probes_router(extender, registry))
}

/// The probes alone: `GET /healthz`, `GET /readyz`, `GET /metrics` (`extender.probesListen`).
pub fn probes_router(extender: Arc<Extender>, registry: Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(extender)
        .route(
            "/metrics",
            get(move || async move { metrics_response(&registry) }),
        )
}

/// `/metrics`' reply: the text exposition of `registry`.
pub fn metrics_response(registry: &Registry) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(registry),
    )
        .into_response()
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A 200 with the reply's parts as they are (slices of the request are not copied).
fn reply(reply: Reply) -> Response {
    let len = reply.len();
    let mut parts = reply.into_parts();
    let body = match parts.len() {
        0 => Body::empty(),
        1 => Body::from(parts.remove(0)),
        _ => Body::from_stream(futures::stream::iter(
            parts.into_iter().map(Ok::<_, std::convert::Infallible>),
        )),
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        body,
    )
        .into_response()
}

async fn verb(ext: &Arc<Extender>, verb: Verb, body: Bytes) -> Response {
    match ext.handle(verb, body).await {
        Ok(r) => reply(r),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            serde_json::to_vec(&e).unwrap_or_else(|_| b"{\"error\":\"bad request\"}".to_vec()),
        ),
    }
}

async fn filter(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    verb(&ext, Verb::Filter, body).await
}

async fn prioritize(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    verb(&ext, Verb::Prioritize, body).await
}

/// Ready once telemetry and the node watch have synced; the body says what is missing or
/// stale (a stale watch or telemetry keeps the replica ready: it answers fast, neutrally).
async fn readyz(State(ext): State<Arc<Extender>>) -> Response {
    let view = ext.view();
    let telemetry = match view.fail_open {
        None => "telemetry: ok".to_string(),
        Some(reason) => format!("telemetry: failing open ({})", reason.as_str()),
    };
    let missing = &view.inputs.carbon_missing;
    let carbon = match (view.inputs.carbon.len(), missing.is_empty()) {
        (n, true) => format!("carbon: ok ({n} zones)"),
        (_, false) => format!(
            "carbon: no intensity for {} ({})",
            missing.keys().cloned().collect::<Vec<_>>().join(", "),
            missing
                .iter()
                .map(|(z, e)| format!("{z}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let nodes = if !view.nodes_synced {
        "nodes: not synced".to_string()
    } else if view.stale_watches.is_empty() {
        format!("nodes: synced ({} known)", view.targets.len())
    } else {
        let failing: Vec<String> = view
            .stale_watches
            .iter()
            .map(|f| {
                format!(
                    "{} watch failing for {:.0} s: {}",
                    f.watch,
                    f.failing_for.as_secs_f64(),
                    f.last_error
                )
            })
            .collect();
        format!(
            "nodes: stale, failing open ({}) ({})",
            FailOpen::NodesStale.as_str(),
            failing.join("; ")
        )
    };
    let gaps: Vec<String> = view
        .latency_unknown
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(region, n)| {
            format!(
                "from {region} unknown for {n} of {} nodes",
                view.targets.len()
            )
        })
        .collect();
    let latency = match (view.latency_unknown.len(), gaps.is_empty()) {
        (0, _) => "latency: no user regions configured (topology.latencyMs)".to_string(),
        (n, true) => format!("latency: ok ({n} user regions)"),
        (_, false) => format!(
            "latency: {} (those nodes pass with a neutral latency term)",
            gaps.join("; ")
        ),
    };
    let ready = view.nodes_synced && view.inputs.snapshot.is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!("{telemetry}\n{carbon}\n{nodes}\n{latency}\n"),
    )
        .into_response()
}
