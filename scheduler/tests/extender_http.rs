//! The extender over HTTP, in process: golden kube-scheduler request bodies in both
//! `nodeCacheCapable` modes checked key by key, 400s for bad input, fail-open replies,
//! metrics and readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use kepler_client::{FleetSnapshot, TelemetryError, TelemetrySource};
use scheduler::config::Config;
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMES: &str = include_str!("fixtures/args-names.json");
const NODES: &str = include_str!("fixtures/args-nodes.json");
/// Every key of kube-scheduler's `ExtenderFilterResult`, sorted.
const FILTER_RESULT_KEYS: [&str; 5] = [
    "Error",
    "FailedAndUnresolvableNodes",
    "FailedNodes",
    "NodeNames",
    "Nodes",
];

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The demo extender on a fixed clock (2020-03-04 12:00 UTC).
async fn demo(config: Config) -> Router {
    let mut parts = runtime::demo(config).expect("demo parts");
    parts.clock = Arc::new(noon);
    Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("service starts")
        .router()
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, bytes.to_vec())
}

async fn post(app: &Router, verb: &str, body: &str) -> (StatusCode, Value) {
    let (status, bytes) = call(app, "POST", &format!("/scheduler/{verb}"), body.to_string()).await;
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{verb}: reply is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn names_of(args: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(args).expect("fixture");
    v["NodeNames"]
        .as_array()
        .expect("NodeNames")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect()
}

#[tokio::test]
async fn names_mode_filter_and_prioritize_golden() {
    let app = demo(Config::default()).await;
    let names = names_of(NAMES);

    let (status, filter) = post(&app, "filter", NAMES).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&filter), FILTER_RESULT_KEYS);
    assert_eq!(filter["Nodes"], Value::Null);
    assert_eq!(
        filter["NodeNames"],
        json!(names),
        "every candidate passes, in request order"
    );
    assert_eq!(filter["FailedNodes"], json!({}));
    assert_eq!(filter["FailedAndUnresolvableNodes"], json!({}));
    assert_eq!(filter["Error"], json!(""));

    let (status, prio) = post(&app, "prioritize", NAMES).await;
    assert_eq!(status, StatusCode::OK);
    let list = prio.as_array().expect("a bare HostPriorityList array");
    assert_eq!(list.len(), names.len());
    for (entry, name) in list.iter().zip(&names) {
        assert_eq!(keys(entry), ["Host", "Score"]);
        assert_eq!(entry["Host"], json!(name), "request order kept");
        let s = entry["Score"].as_i64().expect("integer score");
        assert!((0..=10).contains(&s), "{name}: score {s} outside 0..=10");
    }
    let score = |n: &str| {
        list.iter()
            .find(|e| e["Host"] == n)
            .and_then(|e| e["Score"].as_i64())
            .expect("scored")
    };
    assert_eq!(
        score("not-in-the-cache"),
        5,
        "unknown names are scored neutrally, not dropped"
    );
    // ecoplace.io/objective: carbon and user region FR: France's 2020 grid (~70 g/kWh at
    // this hour) beats GB (~350) and DE (~420), and the efficient ARM node is best.
    assert_eq!(score("fr-arm-eff-1"), 10);
    assert!(score("fr-std-x86-2") > score("gb-std-x86-1"));
    assert!(score("gb-std-x86-1") > score("de-old-x86-0"));
}

#[tokio::test]
async fn nodes_mode_filter_returns_passing_objects_unchanged() {
    let app = demo(Config::default()).await;
    let args: Value = serde_json::from_str(NODES).expect("fixture");
    let sent = args["Nodes"]["items"].as_array().expect("items").clone();

    let (status, filter) = post(&app, "filter", NODES).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&filter), FILTER_RESULT_KEYS);
    assert_eq!(filter["NodeNames"], Value::Null);
    assert_eq!(filter["Error"], json!(""));
    assert_eq!(keys(&filter["Nodes"]), ["items", "metadata"]);
    let items = filter["Nodes"]["items"].as_array().expect("items");
    let passing: Vec<&str> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(passing, ["gb-old-x86-1", "fr-std-x86-0", "de-arm-eff-0"]);
    for item in items {
        let original = sent
            .iter()
            .find(|s| s["metadata"]["name"] == item["metadata"]["name"])
            .expect("sent");
        assert_eq!(item, original, "node objects come back exactly as sent");
    }
    // 1 cpu (the init container) and 320 MiB (256 + 64) do not fit a 128 MiB node;
    // preemption could free room, so it is FailedNodes, not unresolvable.
    assert_eq!(
        filter["FailedNodes"],
        json!({"fr-tiny-0": "ecoplace: needs 320 MiB memory, 128 MiB free"})
    );
    assert_eq!(filter["FailedAndUnresolvableNodes"], json!({}));

    let (status, prio) = post(&app, "prioritize", NODES).await;
    assert_eq!(status, StatusCode::OK);
    let hosts: Vec<&str> = prio
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["Host"].as_str().expect("Host"))
        .collect();
    assert_eq!(
        hosts,
        ["gb-old-x86-1", "fr-std-x86-0", "de-arm-eff-0", "fr-tiny-0"]
    );
    let scores: Vec<i64> = prio
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["Score"].as_i64().expect("Score"))
        .collect();
    assert_eq!(
        scores.iter().max(),
        Some(&scores[1]),
        "FR node wins a carbon-objective pod from FR users: {scores:?}"
    );
    assert_eq!(scores[3], 0, "a node that cannot fit the pod scores 0");
}

#[tokio::test]
async fn hard_policy_fails_nodes_as_unresolvable() {
    let config = Config::parse(
        "policy:\n  namespaces:\n    shop:\n      requiredLabels:\n        topology.kubernetes.io/region: fr\n",
        "test.yaml",
    )
    .expect("config");
    let app = demo(config).await;
    let (_, filter) = post(&app, "filter", NAMES).await;
    assert_eq!(
        filter["NodeNames"],
        json!(["fr-arm-eff-1", "not-in-the-cache", "fr-std-x86-2"])
    );
    let failed = filter["FailedAndUnresolvableNodes"]
        .as_object()
        .expect("map");
    assert_eq!(failed.len(), 2);
    assert_eq!(
        failed["de-old-x86-0"],
        json!("ecoplace: label topology.kubernetes.io/region=fr required")
    );
    assert_eq!(filter["FailedNodes"], json!({}));
}

#[tokio::test]
async fn bad_requests_are_400_with_a_json_error_naming_the_problem() {
    let app = demo(Config::default()).await;
    let pod: Value = serde_json::from_str::<Value>(NAMES).expect("fixture")["Pod"].clone();
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed ExtenderArgs"),
        (String::new(), "malformed ExtenderArgs"),
        ("[]".into(), "malformed ExtenderArgs"),
        (
            json!({"pod": pod, "nodenames": ["a"]}).to_string(),
            "unknown field `nodenames`, expected one of `Pod`",
        ),
        (
            json!({"Pod": null, "NodeNames": ["a"]}).to_string(),
            "Pod is missing",
        ),
        (json!({"NodeNames": ["a"]}).to_string(), "Pod is missing"),
        (
            json!({"Pod": pod, "Nodes": null, "NodeNames": null}).to_string(),
            "both are missing",
        ),
        (
            json!({"Pod": pod, "Nodes": {"items": []}, "NodeNames": ["a"]}).to_string(),
            "both Nodes and NodeNames",
        ),
        (
            json!({"Pod": pod, "Nodes": {"items": [{"metadata": {}}]}}).to_string(),
            "Nodes.items[0]: metadata.name is missing",
        ),
        (
            json!({"Pod": pod, "NodeNames": "node-1"}).to_string(),
            "malformed ExtenderArgs",
        ),
    ];
    for verb in ["filter", "prioritize"] {
        for (body, expect) in &cases {
            let (status, v) = post(&app, verb, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{verb} {body:.60}");
            let msg = v["error"].as_str().expect("error string");
            assert!(
                msg.contains(expect),
                "{verb} {body:.60}: `{msg}` lacks `{expect}`"
            );
        }
    }
    let mut bad_cpu: Value = serde_json::from_str(NAMES).expect("fixture");
    bad_cpu["Pod"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("lots");
    let (status, v) = post(&app, "filter", &bad_cpu.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|m| m.contains("spec.containers[0].resources.requests[cpu]")),
        "{v}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_not_buffered() {
    let config = Config::parse("extender:\n  maxBodyBytes: 1024\n", "test.yaml").expect("config");
    let app = demo(config).await;
    let (status, _) = call(&app, "POST", "/scheduler/filter", NAMES.repeat(2)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_annotations_never_block_the_pod() {
    let app = demo(Config::default()).await;
    let mut args: Value = serde_json::from_str(NAMES).expect("fixture");
    args["Pod"]["metadata"]["annotations"] = json!({
        "ecoplace.io/weights": "carbon=lots",
        "ecoplace.io/max-latency-ms": "-3",
    });
    let (status, filter) = post(&app, "filter", &args.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filter["NodeNames"].as_array().map(Vec::len), Some(5));
    let (status, prio) = post(&app, "prioritize", &args.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prio.as_array().map(Vec::len), Some(5));
    let (_, metrics) = call(&app, "GET", "/metrics", Body::empty()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("ecoplace_annotation_errors_total{annotation=\"ecoplace.io/weights\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn skip_annotation_gives_neutral_scores() {
    let app = demo(Config::default()).await;
    let mut args: Value = serde_json::from_str(NAMES).expect("fixture");
    args["Pod"]["metadata"]["annotations"] = json!({"ecoplace.io/skip": "true"});
    let (_, prio) = post(&app, "prioritize", &args.to_string()).await;
    assert!(
        prio.as_array()
            .expect("array")
            .iter()
            .all(|e| e["Score"] == 5),
        "{prio}"
    );
}

/// Telemetry that never arrives.
struct NoTelemetry;

#[async_trait::async_trait]
impl TelemetrySource for NoTelemetry {
    async fn snapshot(&self, _now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
        Err(TelemetryError::Unreachable {
            url: "http://prometheus.invalid:9090".into(),
            message: "connection refused".into(),
        })
    }
    fn describe(&self) -> String {
        "unreachable test source".into()
    }
}

#[tokio::test]
async fn missing_telemetry_fails_open_and_says_so() {
    let mut parts = runtime::demo(Config::default()).expect("demo parts");
    parts.clock = Arc::new(noon);
    parts.telemetry = Arc::new(NoTelemetry);
    let app = Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("starts")
        .router();
    let names = names_of(NAMES);

    let (status, filter) = post(&app, "filter", NAMES).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filter["NodeNames"], json!(names));
    let (_, nodes_filter) = post(&app, "filter", NODES).await;
    assert_eq!(
        nodes_filter["Nodes"]["items"].as_array().map(Vec::len),
        Some(4),
        "failing open, even the node that cannot fit passes (kube-scheduler's own filters judge it)"
    );
    let (_, prio) = post(&app, "prioritize", NAMES).await;
    assert!(
        prio.as_array()
            .expect("array")
            .iter()
            .all(|e| e["Score"] == 5),
        "{prio}"
    );

    let (_, metrics) = call(&app, "GET", "/metrics", Body::empty()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("ecoplace_fail_open_total{reason=\"telemetry_missing\"} 3"),
        "{metrics}"
    );
    let (status, ready) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = String::from_utf8_lossy(&ready);
    assert!(ready.contains("telemetry_missing"), "{ready}");
}

#[tokio::test]
async fn health_readiness_and_metrics_when_all_is_well() {
    let app = demo(Config::default()).await;
    let (status, body) = call(&app, "GET", "/healthz", Body::empty()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    let (status, ready) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&ready)
    );
    assert!(String::from_utf8_lossy(&ready).contains("nodes: synced (24 known)"));

    post(&app, "prioritize", NAMES).await;
    post(&app, "filter", NAMES).await;
    let (_, metrics) = call(&app, "GET", "/metrics", Body::empty()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    for line in [
        "ecoplace_extender_requests_total{code=\"200\",verb=\"prioritize\"} 1",
        "ecoplace_extender_requests_total{code=\"200\",verb=\"filter\"} 1",
        "ecoplace_decisions_total{outcome=\"scored\",verb=\"prioritize\"} 1",
        "ecoplace_extender_request_duration_seconds_count{verb=\"prioritize\"} 1",
        "ecoplace_nodes_known 24",
        "ecoplace_telemetry_age_seconds 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    let avoided = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ecoplace_carbon_avoided_grams_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("carbon avoided counter");
    assert!(
        avoided > 0.0,
        "choosing FR over the median node avoids carbon: {avoided}"
    );
}

/// Pod events the extender would write, kept for the test to read.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<scheduler::extender::events::PodEvent>>);

impl scheduler::extender::events::EventSink for Recorded {
    fn publish(&self, event: scheduler::extender::events::PodEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// The demo's names-mode fixture with these annotations.
fn annotated(annotations: Value) -> String {
    let mut args: Value = serde_json::from_str(NAMES).expect("fixture");
    args["Pod"]["metadata"]["annotations"] = annotations;
    args.to_string()
}

#[tokio::test]
async fn user_regions_never_block_a_pod() {
    // The demo's user regions are DE, FR and GB: FR users are 5 ms from the fr nodes,
    // 14 ms from gb and 17 ms from de.
    let mut parts = runtime::demo(Config::default()).expect("demo parts");
    parts.clock = Arc::new(noon);
    let events = Arc::new(Recorded::default());
    parts.events = events.clone();
    let app = Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("service starts")
        .router();

    // `Fr` is FR: the SLO holds where it should, and only distance fails a node.
    let args =
        annotated(json!({"ecoplace.io/user-region": "Fr", "ecoplace.io/max-latency-ms": "10"}));
    let (_, filter) = post(&app, "filter", &args).await;
    assert_eq!(
        filter["NodeNames"],
        json!(["fr-arm-eff-1", "not-in-the-cache", "fr-std-x86-2"])
    );
    let failed = filter["FailedAndUnresolvableNodes"].as_object().unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed["gb-std-x86-1"]
            .as_str()
            .unwrap()
            .contains("latency from FR 14 ms > SLO 10 ms"),
        "{failed:?}"
    );

    // An unknown region: the default policy (no latency term, no SLO), every node passes,
    // and the pod's owner is told which regions exist.
    let args =
        annotated(json!({"ecoplace.io/user-region": "Mars", "ecoplace.io/max-latency-ms": "1"}));
    let (_, filter) = post(&app, "filter", &args).await;
    assert_eq!(filter["NodeNames"], json!(names_of(NAMES)));
    assert_eq!(filter["FailedAndUnresolvableNodes"], json!({}));
    let (_, metrics) = call(&app, "GET", "/metrics", Body::empty()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics
            .contains("ecoplace_annotation_errors_total{annotation=\"ecoplace.io/user-region\"} 1"),
        "{metrics}"
    );
    let recorded = events.0.lock().unwrap().clone();
    let ignored: Vec<_> = recorded
        .iter()
        .filter(|e| e.reason == "EcoplaceAnnotationIgnored")
        .collect();
    assert_eq!(ignored.len(), 1, "{recorded:?}");
    assert!(
        ignored[0].note.contains(
            "ecoplace.io/user-region=\"Mars\" ignored: unknown user region (known: DE, FR, GB)"
        ),
        "{}",
        ignored[0].note
    );
}

#[tokio::test]
async fn a_known_region_without_latency_to_a_node_passes_it_and_says_so() {
    let mut parts = runtime::demo(Config::default()).expect("demo parts");
    parts.clock = Arc::new(noon);
    // Nobody measured the latency from FR users to the gb cluster (its 8 nodes).
    parts
        .config
        .topology
        .latency_ms
        .get_mut("gb")
        .expect("the demo's gb row")
        .remove("FR");
    let app = Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("service starts")
        .router();
    let args = annotated(
        json!({"ecoplace.io/user-region": "FR", "ecoplace.io/max-latency-ms": "15", "ecoplace.io/objective": "latency"}),
    );
    let (_, filter) = post(&app, "filter", &args).await;
    // de (17 ms) is too far; gb (unknown) passes.
    assert_eq!(
        filter["NodeNames"],
        json!([
            "gb-std-x86-1",
            "fr-arm-eff-1",
            "not-in-the-cache",
            "fr-std-x86-2"
        ])
    );
    let (_, prio) = post(&app, "prioritize", &args).await;
    let score = |n: &str| {
        prio.as_array()
            .unwrap()
            .iter()
            .find(|e| e["Host"] == n)
            .and_then(|e| e["Score"].as_i64())
            .unwrap()
    };
    // Neutral: the unknown gb node ranks between the near fr and the far de nodes.
    assert!(score("fr-arm-eff-1") > score("gb-std-x86-1"), "{prio}");
    assert!(score("gb-std-x86-1") > score("de-old-x86-0"), "{prio}");
    let (_, metrics) = call(&app, "GET", "/metrics", Body::empty()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("ecoplace_latency_unknown_nodes{user_region=\"FR\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecoplace_latency_unknown_nodes{user_region=\"DE\"} 0"),
        "{metrics}"
    );
    let (status, ready) = call(&app, "GET", "/readyz", Body::empty()).await;
    let ready = String::from_utf8_lossy(&ready);
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(
        ready.contains("latency: from FR unknown for 8 of "),
        "{ready}"
    );
}
