//! An in-process fake OCM hub apiserver: ManagedClusters (list), AddOnPlacementScores
//! (get, create, PUT status with resourceVersion checks, status subresource semantics) and
//! coordination.k8s.io/v1 Leases (get, create, apply / strategic / merge patches, apply
//! conflicts on a held `holderIdentity`), in the upstream JSON shapes; it records every
//! request and can answer the next status writes with 409.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
    /// When the fake received it.
    pub at: std::time::Instant,
}

#[derive(Default)]
pub struct Hub {
    pub objects: Mutex<BTreeMap<String, Value>>,
    pub requests: Mutex<Vec<Req>>,
    /// The next this many status PUTs answer 409 Conflict.
    pub conflicts: AtomicUsize,
    rv: AtomicUsize,
}

pub const MC: &str = "/apis/cluster.open-cluster-management.io/v1/managedclusters";

pub fn score_path(ns: &str, name: &str) -> String {
    format!(
        "/apis/cluster.open-cluster-management.io/v1alpha1/namespaces/{ns}/addonplacementscores/{name}"
    )
}

impl Hub {
    pub fn put(&self, path: &str, mut obj: Value) {
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects.lock().unwrap().insert(path.to_string(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests other than the Lease traffic.
    pub fn score_requests(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| !r.path.contains("/leases"))
            .collect()
    }

    fn next_rv(&self) -> String {
        (self.rv.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// RFC 7386 JSON merge patch (null deletes).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

const COLLECTIONS: [&str; 3] = ["managedclusters", "addonplacementscores", "leases"];

async fn handle(
    State(hub): State<Arc<Hub>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hub.requests.lock().unwrap().push(Req {
        method: method.to_string(),
        path: path.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
        at: std::time::Instant::now(),
    });
    let last = path.rsplit('/').next().unwrap_or("");
    let is_collection = COLLECTIONS.contains(&last);
    match (method, is_collection) {
        (Method::GET, true) => {
            let objects = hub.objects.lock().unwrap();
            let items: Vec<Value> = objects
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{path}/")))
                .map(|(_, v)| v.clone())
                .collect();
            ok(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": hub.rv.load(Ordering::SeqCst).to_string()},
                    "items": items}),
            )
        }
        (Method::GET, false) => match hub.get(&path) {
            Some(v) => ok(StatusCode::OK, &v),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{path} not found"),
            ),
        },
        (Method::POST, true) => {
            let Some(name) = body["metadata"]["name"].as_str() else {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "name required");
            };
            let item = format!("{path}/{name}");
            let mut obj = body.clone();
            if last == "addonplacementscores" {
                // Status subresource: create ignores status.
                obj.as_object_mut().unwrap().remove("status");
            }
            obj["metadata"]["uid"] = json!(format!("uid-{name}"));
            obj["metadata"]["creationTimestamp"] = json!("2026-11-29T06:00:00Z");
            let mut objects = hub.objects.lock().unwrap();
            if objects.contains_key(&item) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{item} exists"),
                );
            }
            obj["metadata"]["resourceVersion"] = json!(hub.next_rv());
            objects.insert(item, obj.clone());
            ok(StatusCode::CREATED, &obj)
        }
        (Method::PUT, false) if last == "status" => {
            let item = path.trim_end_matches("/status").to_string();
            if hub
                .conflicts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                // Someone else wrote: the stored object moves on.
                if let Some(o) = hub.objects.lock().unwrap().get_mut(&item) {
                    o["metadata"]["resourceVersion"] = json!(hub.next_rv());
                }
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified",
                );
            }
            let mut objects = hub.objects.lock().unwrap();
            let Some(stored) = objects.get_mut(&item) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{item} not found"),
                );
            };
            if stored["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified",
                );
            }
            stored["status"] = body["status"].clone();
            stored["metadata"]["resourceVersion"] = json!(hub.next_rv());
            ok(StatusCode::OK, stored)
        }
        (Method::PATCH, false) => {
            let mut objects = hub.objects.lock().unwrap();
            let apply = content_type.starts_with("application/apply-patch");
            let stored = objects.entry(path.clone()).or_insert_with(|| {
                json!({"apiVersion": body["apiVersion"], "kind": body["kind"],
                    "metadata": {"name": last}})
            });
            if apply {
                let held = stored["spec"]["holderIdentity"]
                    .as_str()
                    .map(str::to_string);
                let wanted = body["spec"]["holderIdentity"].as_str();
                if let (Some(h), Some(w)) = (held.as_deref(), wanted)
                    && h != w
                {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "Apply failed with 1 conflict: conflict with another manager: .spec.holderIdentity",
                    );
                }
            }
            merge(stored, &body);
            stored["metadata"]["resourceVersion"] = json!(hub.next_rv());
            ok(StatusCode::OK, stored)
        }
        (m, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{m} {path}"),
        ),
    }
}

/// Serves a fake hub on 127.0.0.1:0; returns it and a client pointed at it.
pub async fn start() -> (Arc<Hub>, kube::Client) {
    let (hub, client, _) = start_at().await;
    (hub, client)
}

/// [`start`], and the fake's base URL (for a kubeconfig).
pub async fn start_at() -> (Arc<Hub>, kube::Client, String) {
    let hub = Arc::new(Hub::default());
    let app = Router::new().fallback(handle).with_state(Arc::clone(&hub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://127.0.0.1:{port}");
    let config = kube::Config::new(url.parse().unwrap());
    (hub, kube::Client::try_from(config).unwrap(), url)
}

/// A ManagedCluster in the upstream shape.
pub fn managed_cluster(name: &str, region: &str, available: bool, cpu: &str) -> Value {
    json!({
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"region": region}},
        "spec": {"hubAcceptsClient": true, "leaseDurationSeconds": 60},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "64Gi"},
            "capacity": {"cpu": cpu, "memory": "64Gi"},
            "conditions": [{
                "type": "ManagedClusterConditionAvailable",
                "status": if available { "True" } else { "Unknown" },
                "reason": if available { "ManagedClusterAvailable" } else { "ManagedClusterLeaseUpdateStopped" },
                "message": "", "lastTransitionTime": "2026-11-29T05:00:00Z"
            }]
        }
    })
}
