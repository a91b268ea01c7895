//! Pod PATCH (`application/json-patch+json` and `application/merge-patch+json`) as the
//! apiserver applies them: the stored pod changes (watchers see MODIFIED) and the reply is
//! the patched pod; a failed JSON-patch `test` is a 422, a missing pod a 404.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;

/// One pod patch the fake received.
#[derive(Debug, Clone)]
pub struct PatchCall {
    pub namespace: String,
    pub pod: String,
    /// `json` or `merge`.
    pub kind: &'static str,
    pub body: Value,
    pub at: Instant,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn patch_pod(
    State(f): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some("application/json-patch+json") => "json",
        Some("application/merge-patch+json") => "merge",
        other => {
            return status(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, got {other:?}"
                ),
            );
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "not JSON".into());
    };
    f.data().patches.push(PatchCall {
        namespace: ns.clone(),
        pod: name.clone(),
        kind,
        body: v.clone(),
        at: Instant::now(),
    });
    let Some(mut pod) = f.data().pods.get(&name).cloned() else {
        return status(404, "NotFound", format!("pods \"{name}\" not found"));
    };
    if kind == "json" {
        let Ok(p) = serde_json::from_value::<json_patch::Patch>(v) else {
            return status(400, "BadRequest", "not a JSON patch".into());
        };
        if let Err(e) = json_patch::patch(&mut pod, &p) {
            return status(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            );
        }
    } else {
        json_patch::merge(&mut pod, &v);
    }
    f.change("pods", "Pod", pod.clone(), false);
    let stored = f.data().pods.get(&name).cloned().unwrap_or(pod);
    let mut reply = stored;
    reply["apiVersion"] = json!("v1");
    reply["kind"] = json!("Pod");
    (
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}
