//! The Pod `eviction` subresource (policy/v1): records every request and answers as the
//! apiserver does, with a reply chosen per pod (201 by default; 429 for a disruption
//! budget, 404, 409 on a UID precondition, 403).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;

/// One eviction request the fake received.
#[derive(Debug, Clone)]
pub struct EvictionCall {
    pub namespace: String,
    pub pod: String,
    pub body: Value,
    pub at: Instant,
}

pub async fn evict(
    State(f): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let mut d = f.data();
    d.evictions.push(EvictionCall {
        namespace: ns.clone(),
        pod: name.clone(),
        body: v,
        at: Instant::now(),
    });
    let code = d.eviction_replies.get(&name).copied().unwrap_or(201);
    drop(d);
    let status = match code {
        201 => {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        }
        429 => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
            "code": 429}),
        404 => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("pods \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": "pods"}, "code": 404}),
        409 => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Operation cannot be fulfilled on Pod \"{name}\": Precondition failed: UID in precondition: uid-{name}, UID in object meta: 7f3c"),
            "reason": "Conflict", "details": {"name": name, "kind": "Pod"}, "code": 409}),
        _ => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("pods \"{name}\" is forbidden: User \"system:serviceaccount:ecoplace:ecoplace\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"{ns}\""),
            "reason": "Forbidden", "details": {"name": name, "kind": "pods"}, "code": code}),
    };
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        status.to_string(),
    )
        .into_response()
}
