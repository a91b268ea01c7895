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

use crate::placement::{Format, PlacementError, PlacementRequest, Placer};

/// The placement routes, with their own body limit.
pub fn router(placer: Arc<Placer>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/placements", post(place))
        .route("/v1/rebalance", post(rebalance))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(placer)
}

/// YAML when the content type says so, JSON otherwise.
fn format(headers: &HeaderMap) -> Format {
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"));
    if yaml { Format::Yaml } else { Format::Json }
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
    let format = format(&headers);
    blocking(move || placer.place_body(&body, format, Utc::now())).await
}

async fn rebalance(State(placer): State<Arc<Placer>>, headers: HeaderMap, body: Bytes) -> Response {
    let format = format(&headers);
    blocking(move || {
        let req = PlacementRequest::decode(&body, format)?;
        placer.rebalance(&req, None, Utc::now())
    })
    .await
}
