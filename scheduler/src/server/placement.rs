//! The placement API over HTTP: `POST /v1/placements` and `POST /v1/rebalance`. Handlers
//! only translate HTTP to [`Placer`] calls (run on a blocking thread) and back.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde::Serialize;

use crate::placement::{Format, PlacementError, Placer};

/// The placement routes, with their own body limit.
pub fn router(placer: Arc<Placer>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/placements", post(place))
        .route("/v1/rebalance", post(rebalance))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(placer)
}

/// The body's format: what the content type says (`…yaml`, `…json`); with one that names
/// neither (none, `text/plain`, curl's default `application/x-www-form-urlencoded`), JSON
/// when the body starts like a JSON value, else YAML.
fn format(headers: &HeaderMap, body: &[u8]) -> Format {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if content_type.contains("yaml") {
        Format::Yaml
    } else if content_type.contains("json") || starts_like_json(body) {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// Whether the first non-blank byte can start a JSON value.
fn starts_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9'))
}

/// A body declared JSON that cannot be JSON at all gets told what to send.
fn hint(e: PlacementError, body: &[u8], format: Format) -> PlacementError {
    match e {
        PlacementError::Malformed(mut f)
            if format == Format::Json && f.field.is_empty() && !starts_like_json(body) =>
        {
            f.message.push_str(
                " (the body is not JSON: send a JSON object with `Content-Type: application/json`, or YAML with `Content-Type: application/yaml`)",
            );
            PlacementError::Malformed(f)
        }
        other => other,
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(&PlacementError::Internal(format!(
            "encoding the answer: {e}"
        ))),
    }
}

fn error(e: &PlacementError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(&e.body()) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => (status, e.to_string()).into_response(),
    }
}

/// Runs `f` on a blocking thread (the solver is CPU-bound) and answers with its result.
async fn blocking<T, F>(f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, PlacementError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(answer)) => json(StatusCode::OK, &answer),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&PlacementError::Internal(format!("solver task: {e}"))),
    }
}

async fn place(State(placer): State<Arc<Placer>>, headers: HeaderMap, body: Bytes) -> Response {
    let format = format(&headers, &body);
    let now = Utc::now();
    let req = match placer.decode(&body, format, now).await {
        Ok(r) => r,
        Err(e) => return error(&hint(e, &body, format)),
    };
    blocking(move || placer.place(&req, now)).await
}

async fn rebalance(State(placer): State<Arc<Placer>>, headers: HeaderMap, body: Bytes) -> Response {
    let format = format(&headers, &body);
    let now = Utc::now();
    let req = match placer.decode(&body, format, now).await {
        Ok(r) => r,
        Err(e) => return error(&hint(e, &body, format)),
    };
    blocking(move || placer.rebalance(&req, None, now)).await
}
