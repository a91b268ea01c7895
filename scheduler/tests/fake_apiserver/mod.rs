//! An in-process fake Kubernetes apiserver for tests: Nodes and Pods (list, and chunked
//! watches with bookmarks replaying a change log), Pod patches (JSON and merge) and
//! events.k8s.io/v1 Event writes,
//! all in the upstream JSON shapes; it records what clients asked for. Faults: open
//! watches can be closed (cleanly, or cut off with an error), and Node/Pod calls can fail
//! for a while (lists 500, watches end at once with a 410 Expired event).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod eviction;
pub mod patch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The field selector the pod watch must use.
pub const PHASE_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Objects, a change log for watches, and what clients asked for.
#[derive(Default)]
pub struct Data {
    pub rv: u64,
    pub nodes: BTreeMap<String, Value>,
    pub pods: BTreeMap<String, Value>,
    /// (resourceVersion, "nodes"|"pods", one watch event line).
    pub log: Vec<(u64, &'static str, String)>,
    pub pod_selectors: Vec<Option<String>>,
    pub watch_queries: Vec<HashMap<String, String>>,
    pub node_lists: usize,
    /// (method, namespace, body) of every event write.
    pub events: Vec<(String, String, Value)>,
    /// Every Pod eviction request, in order.
    pub evictions: Vec<eviction::EvictionCall>,
    /// The HTTP status an eviction of the pod with this name gets (201 if absent).
    pub eviction_replies: HashMap<String, u16>,
    /// Every Pod PATCH, in order.
    pub patches: Vec<patch::PatchCall>,
}

pub struct Fake {
    pub data: Mutex<Data>,
    pub rv_tx: watch::Sender<u64>,
    pub pods_gate: watch::Receiver<bool>,
    pub calls: AtomicUsize,
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Bumped to end every open watch; `true`: cut off with an error, not a clean end.
    pub closer: watch::Sender<(u64, bool)>,
    /// Node/Pod lists answer 500 and watches a 410 Expired event while set.
    pub failing: AtomicBool,
    /// Node/Pod watch calls (only) answer 500 while set; lists work.
    pub failing_watches: AtomicBool,
    /// Node/Pod calls answered with a failure.
    pub failed_calls: AtomicUsize,
}

pub type Shared = Arc<Fake>;

impl Fake {
    /// A client configuration for this fake.
    pub fn kube_config(&self) -> kube::Config {
        kube::Config::new(self.url.parse().unwrap())
    }

    /// Ends every open watch stream: cleanly (as a server-side timeout does) or, with
    /// `abrupt`, cut off with an error mid-stream.
    pub fn close_watches(&self, abrupt: bool) {
        self.closer.send_modify(|(epoch, how)| {
            *epoch += 1;
            *how = abrupt;
        });
    }

    /// Makes Node/Pod lists and watches fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `obj` (or deletes it) under a new resourceVersion and tells watchers.
    pub fn change(&self, what: &'static str, kind: &str, mut obj: Value, deleted: bool) {
        let mut d = self.data();
        d.rv += 1;
        let rv = d.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let map = if what == "nodes" {
            &mut d.nodes
        } else {
            &mut d.pods
        };
        let ty = match (deleted, map.contains_key(&name)) {
            (true, _) => "DELETED",
            (false, true) => "MODIFIED",
            (false, false) => "ADDED",
        };
        if deleted {
            map.remove(&name);
        } else {
            map.insert(name, obj.clone());
        }
        let line = watch_line(ty, what, kind, obj);
        d.log.push((rv, what, line));
        drop(d);
        self.rv_tx.send_replace(rv);
    }
}

/// One newline-terminated watch event; objects carry apiVersion and kind.
fn watch_line(ty: &str, what: &str, kind: &str, mut obj: Value) -> String {
    if what != "bookmark" {
        obj["apiVersion"] = json!("v1");
        obj["kind"] = json!(kind);
    }
    format!("{}\n", json!({"type": ty, "object": obj}))
}

fn not_terminal(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// While failing: lists get a 500 Status, watches a 200 whose only event is a 410 Expired
/// ERROR (as after an apiserver restart), which sends the client back to a list. While
/// only watches fail, watch calls get the 500.
fn failure(f: &Fake, watching: bool, kind: &str) -> Option<Response> {
    let watch_only = watching && f.failing_watches.load(Ordering::SeqCst);
    if !f.failing.load(Ordering::SeqCst) && !watch_only {
        return None;
    }
    f.failed_calls.fetch_add(1, Ordering::Relaxed);
    if watching && !watch_only {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 1 (9000)", "reason": "Expired", "code": 410});
        let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
        return Some(([(header::CONTENT_TYPE, "application/json")], line).into_response());
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("etcdserver: request timed out listing {kind}"), "reason": "InternalError", "code": 500});
    Some(
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response(),
    )
}

fn watching(q: &HashMap<String, String>) -> bool {
    q.get("watch").is_some_and(|w| w == "true" || w == "1")
}

async fn nodes(State(f): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    f.calls.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = failure(&f, watching(&q), "nodes") {
        return r;
    }
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch_stream(f, "nodes", "Node", q);
    }
    let mut d = f.data();
    d.node_lists += 1;
    let items: Vec<Value> = d.nodes.values().cloned().collect();
    list("NodeList", d.rv, items)
}

async fn pods(State(f): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    f.calls.fetch_add(1, Ordering::Relaxed);
    let selector = q.get("fieldSelector").cloned();
    f.data().pod_selectors.push(selector.clone());
    let filtered = selector.as_deref() == Some(PHASE_SELECTOR);
    if let Some(r) = failure(&f, watching(&q), "pods") {
        return r;
    }
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch_stream(f, "pods", "Pod", q);
    }
    let mut gate = f.pods_gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    let d = f.data();
    let items: Vec<Value> = d
        .pods
        .values()
        .filter(|p| !filtered || not_terminal(p))
        .cloned()
        .collect();
    list("PodList", d.rv, items)
}

fn list(kind: &str, rv: u64, items: Vec<Value>) -> Response {
    let body = json!({
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A chunked watch: a BOOKMARK (or the initial events and their end bookmark when
/// `sendInitialEvents=true`), then every change after the requested resourceVersion.
fn watch_stream(
    f: Shared,
    what: &'static str,
    kind: &'static str,
    q: HashMap<String, String>,
) -> Response {
    let mut d = f.data();
    d.watch_queries.push(q.clone());
    let now = d.rv;
    let mut pending = VecDeque::new();
    let bookmark = |annotations: Value| {
        let obj = json!({"apiVersion": "v1", "kind": kind,
            "metadata": {"resourceVersion": now.to_string(), "annotations": annotations}});
        watch_line("BOOKMARK", "bookmark", kind, obj)
    };
    let since = if q.get("sendInitialEvents").is_some_and(|v| v == "true") {
        let objects = if what == "nodes" { &d.nodes } else { &d.pods };
        for o in objects.values() {
            pending.push_back(watch_line("ADDED", what, kind, o.clone()));
        }
        pending.push_back(bookmark(json!({"k8s.io/initial-events-end": "true"})));
        now
    } else {
        if q.get("allowWatchBookmarks").is_some_and(|v| v == "true") {
            pending.push_back(bookmark(json!({})));
        }
        q.get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(now)
    };
    drop(d);
    let rx = f.rv_tx.subscribe();
    let mut closer = f.closer.subscribe();
    closer.borrow_and_update();
    let state = (f, since, rx, pending, closer, false);
    let stream = futures::stream::unfold(
        state,
        move |(f, mut since, mut rx, mut pending, mut closer, ended)| async move {
            if ended {
                return None;
            }
            loop {
                if let Some(line) = pending.pop_front() {
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(line)),
                        (f, since, rx, pending, closer, false),
                    ));
                }
                rx.borrow_and_update();
                for (rv, w, line) in &f.data().log {
                    if *rv > since && *w == what {
                        pending.push_back(line.clone());
                        since = *rv;
                    }
                }
                if !pending.is_empty() {
                    continue;
                }
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() {
                        return None;
                    },
                    closed = closer.changed() => {
                        if closed.is_err() || !closer.borrow().1 {
                            return None;
                        }
                        // Cut off: the server aborts the chunked body (no final chunk).
                        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut off");
                        return Some((Err(cut), (f, since, rx, pending, closer, true)));
                    }
                }
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Records an event write and answers as the apiserver does (the object, with server
/// fields); namespace `locked` is forbidden.
async fn event_write(
    State(f): State<Shared>,
    method: Method,
    Path(p): Path<Vec<String>>,
    body: Bytes,
) -> Response {
    let ns = p.first().cloned().unwrap_or_default();
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    f.data()
        .events
        .push((method.to_string(), ns.clone(), v.clone()));
    if ns == "locked" {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "events.events.k8s.io is forbidden: User \"system:serviceaccount:ecoplace:ecoplace\" cannot create resource \"events\"",
            "reason": "Forbidden", "code": 403});
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    v["apiVersion"] = json!("events.k8s.io/v1");
    v["kind"] = json!("Event");
    v["metadata"]["uid"] = json!("0d7c6a54-0000-4000-8000-000000000001");
    v["metadata"]["resourceVersion"] = json!("9001");
    v["metadata"]["creationTimestamp"] = json!("2026-11-28T10:00:00Z");
    let code = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Serves the fake on 127.0.0.1:0; returns it, the pods-list gate and a client.
pub async fn start(gate_open: bool) -> (Shared, watch::Sender<bool>, kube::Client) {
    let (fake, gate, config) = start_with_config(gate_open).await;
    (fake, gate, kube::Client::try_from(config).unwrap())
}

/// Serves the fake on 127.0.0.1:0; returns it, the pods-list gate and a client config.
pub async fn start_with_config(gate_open: bool) -> (Shared, watch::Sender<bool>, kube::Config) {
    let (gate_tx, gate_rx) = watch::channel(gate_open);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Fake {
        data: Mutex::new(Data::default()),
        rv_tx: watch::channel(0).0,
        pods_gate: gate_rx,
        calls: AtomicUsize::new(0),
        url: format!("http://127.0.0.1:{port}"),
        closer: watch::channel((0, false)).0,
        failing: AtomicBool::new(false),
        failing_watches: AtomicBool::new(false),
        failed_calls: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/pods", get(pods))
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            post(event_write),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/eviction",
            post(eviction::evict),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            axum::routing::patch(patch::patch_pod),
        )
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
            axum::routing::patch(event_write),
        )
        .with_state(Arc::clone(&fake));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = fake.kube_config();
    (fake, gate_tx, config)
}

pub fn managed() -> Value {
    json!([{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
        "time": "2026-11-28T09:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:allocatable": {}}}}])
}

pub fn node(name: &str, allocatable: Value) -> Value {
    json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2026-11-01T08:00:00Z",
            "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/region": "fr"},
            "managedFields": managed()},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"capacity": allocatable.clone(), "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-11-28T09:59:00Z", "lastTransitionTime": "2026-11-01T08:01:00Z"}]},
    })
}

pub fn container(name: &str, requests: Value) -> Value {
    json!({"name": name, "image": "registry.example/app:1", "resources": {"requests": requests}})
}

pub fn pod(name: &str, node: Option<&str>, phase: &str, spec: Value) -> Value {
    let mut spec = spec;
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-11-28T09:00:00Z", "managedFields": managed()},
        "spec": spec,
        "status": {"phase": phase},
    })
}
