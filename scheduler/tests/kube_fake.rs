//! The Kubernetes paths against an in-process fake apiserver speaking the upstream JSON:
//! the Node/Pod reflectors behind `KubeNodes` (list, then watch with bookmarks, the pod
//! phase field selector, managedFields dropped) and pod Events written by `KubeEvents`
//! (events.k8s.io/v1, rate-limited per pod and reason).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use fake_apiserver::{Fake, PHASE_SELECTOR, container, node, pod, start};
use scheduler::config::Config;
use scheduler::extender::events::{EventOptions, EventSink, KubeEvents, PodEvent};
use scheduler::extender::metrics::EventMetrics as Metrics;
use scheduler::extender::wire::Meta;
use scheduler::fleet::NodeFact;
use scheduler::fleet::WatchMetrics;
use scheduler::fleet::{KubeNodes, NodeSource};
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMES: &str = include_str!("fixtures/args-names.json");
const MI: f64 = 1024.0 * 1024.0;
const GI: f64 = 1024.0 * MI;

fn seed(f: &Fake) {
    f.change(
        "nodes",
        "Node",
        node(
            "node-a",
            json!({"cpu": "3920m", "memory": "16Gi", "pods": "110"}),
        ),
        false,
    );
    f.change(
        "nodes",
        "Node",
        node("node-b", json!({"cpu": "8", "memory": "32868220Ki"})),
        false,
    );
    f.change(
        "nodes",
        "Node",
        node(
            "node-c",
            json!({"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "2"}),
        ),
        false,
    );
    // node-a: max(250m + 1, init 2) + overhead 100m = 2.1 cores; 64Mi + 128Mi memory.
    f.change(
        "pods",
        "Pod",
        pod(
            "api-0",
            Some("node-a"),
            "Running",
            json!({
        "containers": [container("app", json!({"cpu": "250m", "memory": "64Mi"})),
                       container("proxy", json!({"cpu": "1", "memory": "128Mi"}))],
        "initContainers": [container("migrate", json!({"cpu": "2", "memory": "1Mi"}))],
        "overhead": {"cpu": "100m"}}),
        ),
        false,
    );
    f.change(
        "pods",
        "Pod",
        pod(
            "api-1",
            Some("node-a"),
            "Pending",
            json!({
        "containers": [container("app", json!({"cpu": "500m", "memory": "1Gi"}))]}),
        ),
        false,
    );
    f.change("pods", "Pod", pod("batch-0", Some("node-b"), "Running", json!({
        "containers": [container("job", json!({"cpu": "3", "memory": "2Gi", "nvidia.com/gpu": "1"}))]})), false);
    // Ignored: finished (filtered by the field selector), and not yet bound.
    f.change(
        "pods",
        "Pod",
        pod(
            "done-0",
            Some("node-c"),
            "Succeeded",
            json!({
        "containers": [container("job", json!({"cpu": "8"}))]}),
        ),
        false,
    );
    f.change(
        "pods",
        "Pod",
        pod(
            "pending-0",
            None,
            "Pending",
            json!({
        "containers": [container("big", json!({"cpu": "12", "memory": "40Gi"}))]}),
        ),
        false,
    );
}

fn by_name(facts: Vec<NodeFact>) -> BTreeMap<String, NodeFact> {
    facts.into_iter().map(|f| (f.name.clone(), f)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Polls `check` every 20 ms until it is true, failing after `secs`.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let poll = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(secs), poll)
        .await
        .is_err()
    {
        panic!("timed out after {secs} s waiting for: {what}");
    }
}

#[tokio::test]
async fn kube_nodes_lists_watches_and_sums_requests() {
    let (fake, gate, _client) = start(false).await;
    seed(&fake);
    let metrics = WatchMetrics::register(&prometheus::Registry::new()).unwrap();
    let source = KubeNodes::spawn(fake.kube_config(), &metrics).unwrap();

    eventually(5, "the node list", || fake.data().node_lists > 0).await;
    assert!(source.facts().is_none(), "pods not listed yet: no facts");
    gate.send_replace(true);
    eventually(5, "both stores ready", || source.facts().is_some()).await;

    let facts = by_name(source.facts().unwrap());
    assert_eq!(
        facts.keys().collect::<Vec<_>>(),
        ["node-a", "node-b", "node-c"]
    );
    let a = &facts["node-a"];
    assert!(
        close(a.allocatable.cpu, 3.92) && close(a.allocatable.memory, 16.0 * GI),
        "{a:?}"
    );
    assert!(close(a.allocated.cpu, 2.6), "{a:?}");
    assert!(close(a.allocated.memory, 192.0 * MI + GI), "{a:?}");
    assert_eq!(
        a.labels
            .get("topology.kubernetes.io/region")
            .map(String::as_str),
        Some("fr")
    );
    let b = &facts["node-b"];
    assert!(close(b.allocatable.memory, 32_868_220.0 * 1024.0), "{b:?}");
    assert!(
        close(b.allocated.cpu, 3.0) && close(b.allocated.gpu, 1.0),
        "{b:?}"
    );
    let c = &facts["node-c"];
    assert!(close(c.allocatable.gpu, 2.0), "{c:?}");
    assert_eq!(
        c.allocated.cpu, 0.0,
        "the Succeeded pod is not counted: {c:?}"
    );
    let total: f64 = facts.values().map(|f| f.allocated.cpu).sum();
    assert!(close(total, 5.6), "the unbound pod is not counted: {total}");

    assert!(
        source.node_objects().iter().all(|n| n
            .metadata
            .managed_fields
            .as_ref()
            .is_none_or(Vec::is_empty))
    );
    let cached_pods = source.pod_objects();
    assert_eq!(cached_pods.len(), 4);
    assert!(
        cached_pods
            .iter()
            .all(|p| p.metadata.managed_fields.as_ref().is_none_or(Vec::is_empty))
    );

    // Changes arrive through the watches.
    let batch = fake.data().pods["batch-0"].clone();
    fake.change("pods", "Pod", batch, true);
    let mut c2 = fake.data().nodes["node-c"].clone();
    c2["status"]["allocatable"]["cpu"] = json!("12");
    fake.change("nodes", "Node", c2, false);
    fake.change(
        "pods",
        "Pod",
        pod(
            "web-0",
            Some("node-c"),
            "Running",
            json!({
        "containers": [container("web", json!({"cpu": "1500m", "memory": "1Gi"}))]}),
        ),
        false,
    );
    eventually(3, "the delete, modify and add", || {
        let f = by_name(source.facts().unwrap_or_default());
        f.get("node-b").is_some_and(|b| b.allocated.cpu == 0.0)
            && f.get("node-c")
                .is_some_and(|c| close(c.allocatable.cpu, 12.0) && close(c.allocated.cpu, 1.5))
    })
    .await;

    assert_eq!(source.watch_failures(), [], "no errors: nothing failing");
    for watch in ["nodes", "pods"] {
        assert_eq!(metrics.watch_up.with_label_values(&[watch]).get(), 1);
        assert_eq!(metrics.watch_errors.with_label_values(&[watch]).get(), 0);
    }

    let d = fake.data();
    assert!(
        d.pod_selectors.len() >= 2,
        "a list and a watch: {:?}",
        d.pod_selectors
    );
    for s in &d.pod_selectors {
        assert_eq!(s.as_deref(), Some(PHASE_SELECTOR));
    }
    assert_eq!(
        d.node_lists, 1,
        "changes came through the watch, not a re-list"
    );
    assert_eq!(
        d.watch_queries.len(),
        2,
        "one watch each: {:?}",
        d.watch_queries
    );
    assert!(
        d.watch_queries
            .iter()
            .all(|q| q.get("allowWatchBookmarks").map(String::as_str) == Some("true")),
        "{:?}",
        d.watch_queries
    );
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The demo extender on a fixed clock, writing events through `client`.
async fn extender(config: Config, client: kube::Client) -> (Router, Metrics) {
    let mut parts = runtime::demo(config.clone()).expect("demo parts");
    parts.clock = Arc::new(noon);
    let mut options = EventOptions::from_config(&config.events);
    options.instance = "ecoplace-7f9c-test".into();
    let metrics = parts.event_metrics.clone();
    parts.events = Arc::new(KubeEvents::spawn(client, options, metrics.clone()));
    let svc = Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("starts");
    (svc.router(), metrics)
}

async fn call(app: &Router, verb: &str, body: &str) -> Value {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/scheduler/{verb}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(&to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap()
}

fn counted(m: &Metrics, result: &str) -> u64 {
    m.events.with_label_values(&[result]).get()
}

fn with_annotations(annotations: Value) -> String {
    let mut args: Value = serde_json::from_str(NAMES).unwrap();
    args["Pod"]["metadata"]["annotations"] = annotations;
    args.to_string()
}

#[tokio::test]
async fn malformed_annotation_gives_one_warning_event_per_pod() {
    let (fake, _gate, client) = start(true).await;
    let (app, metrics) = extender(Config::default(), client).await;
    let body = with_annotations(json!({"ecoplace.io/weights": "carbon=lots"}));
    call(&app, "filter", &body).await;
    for _ in 0..5 {
        call(&app, "prioritize", &body).await;
    }
    eventually(5, "6 events seen by the writer", || {
        counted(&metrics, "written") + counted(&metrics, "suppressed") == 6
    })
    .await;
    assert_eq!(
        (
            counted(&metrics, "written"),
            counted(&metrics, "suppressed")
        ),
        (1, 5)
    );

    let d = fake.data();
    assert_eq!(d.events.len(), 1, "{:#?}", d.events);
    let (method, ns, e) = &d.events[0];
    assert_eq!((method.as_str(), ns.as_str()), ("POST", "shop"));
    assert_eq!(e["reason"], "EcoplaceAnnotationIgnored");
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["action"], "Scheduling");
    assert_eq!(e["reportingController"], "ecoplace");
    assert_eq!(e["reportingInstance"], "ecoplace-7f9c-test");
    assert_eq!(e["metadata"]["namespace"], "shop");
    let r = &e["regarding"];
    assert_eq!(
        (&r["apiVersion"], &r["kind"]),
        (&json!("v1"), &json!("Pod"))
    );
    assert_eq!(
        (&r["namespace"], &r["name"]),
        (&json!("shop"), &json!("web-7d9c6b5f4-x2kqp"))
    );
    assert_eq!(r["uid"], "8f1f2c4e-6f0e-4a59-9d2e-2f6a3c1b9e10");
    let note = e["note"].as_str().unwrap();
    assert!(
        note.contains("ecoplace.io/weights=\"carbon=lots\"")
            && note.contains("`lots` is not a number"),
        "{note}"
    );
    assert!(note.ends_with("defaults apply"), "{note}");
}

#[tokio::test]
async fn explain_writes_one_preferred_event_naming_the_chosen_node() {
    let (fake, _gate, client) = start(true).await;
    let mut config = Config::default();
    config.events.explain = true;
    let (app, metrics) = extender(config, client).await;

    call(&app, "filter", NAMES).await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(call(&app, "prioritize", NAMES).await);
    }
    eventually(5, "3 events seen by the writer", || {
        counted(&metrics, "written") + counted(&metrics, "suppressed") == 3
    })
    .await;

    let scores: Vec<(String, i64)> = replies[0]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["Host"] != "not-in-the-cache")
        .map(|h| {
            (
                h["Host"].as_str().unwrap().to_string(),
                h["Score"].as_i64().unwrap(),
            )
        })
        .collect();
    let top = scores.iter().map(|(_, s)| *s).max().unwrap();
    let chosen = scores
        .iter()
        .filter(|(_, s)| *s == top)
        .map(|(n, _)| n)
        .min()
        .unwrap();

    let d = fake.data();
    assert_eq!(
        d.events.len(),
        1,
        "filter writes none, prioritize one per pod: {:#?}",
        d.events
    );
    let e = &d.events[0].2;
    assert_eq!(
        (&e["reason"], &e["type"]),
        (&json!("EcoplacePreferred"), &json!("Normal"))
    );
    let note = e["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("ecoplace preferred {chosen}: −")),
        "{note} (scores {scores:?})"
    );
    assert!(note.contains(&format!("(score {top}; energy ")), "{note}");
    assert!(
        note.contains("gCO2e over the pod's expected lifetime vs the median passing node"),
        "{note}"
    );
}

fn event(ns: &str, name: &str) -> PodEvent {
    let meta = Meta {
        name: name.into(),
        namespace: ns.into(),
        uid: format!("uid-{name}"),
        ..Meta::default()
    };
    let w = scheduler::fleet::policy::AnnotationWarning {
        annotation: "ecoplace.io/skip",
        value: "maybe".into(),
        reason: "expected true or false".into(),
    };
    PodEvent::annotations_ignored(&meta, &[w]).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn full_queue_drops_and_rejected_writes_count_as_failed() {
    let (fake, _gate, client) = start(true).await;
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut options = EventOptions::from_config(&Config::default().events);
    options.queue = 2;
    let sink = KubeEvents::spawn(client, options, metrics.clone());
    // On this single-threaded runtime the writer cannot run until the test yields.
    sink.publish(event("shop", "a"));
    sink.publish(event("locked", "b"));
    for i in 0..3 {
        sink.publish(event("shop", &format!("c{i}")));
    }
    assert_eq!(metrics.events_dropped.get(), 3);
    eventually(5, "both queued events handled", || {
        counted(&metrics, "written") + counted(&metrics, "failed") == 2
    })
    .await;
    assert_eq!(
        (counted(&metrics, "written"), counted(&metrics, "failed")),
        (1, 1)
    );
    let namespaces: Vec<String> = fake
        .data()
        .events
        .iter()
        .map(|(_, ns, _)| ns.clone())
        .collect();
    assert_eq!(namespaces, ["shop", "locked"]);
    assert!(
        fake.calls.load(Ordering::Relaxed) == 0,
        "no watches in this test"
    );
}
