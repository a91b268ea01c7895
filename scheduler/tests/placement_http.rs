//! The placement API over HTTP, in process: a valid request answers with per-workload
//! clusters, totals and the solver status; malformed and invalid requests get 400s naming
//! the field; infeasible ones a 422 naming the workloads; the shipped examples answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use scheduler::config::{Config, PlacementConfig};
use scheduler::placement::Placer;
use scheduler::runtime::{self, Service};
use scheduler::server::placement;
use serde_json::{Value, json};
use tower::ServiceExt;

const EXAMPLE: &str = include_str!("../../examples/placement-request.yaml");
const REBALANCE: &str = include_str!("../../examples/rebalance-request.yaml");

fn app() -> Router {
    placement::router(Arc::new(Placer::new(PlacementConfig::default())), 1 << 20)
}

/// POSTs `body` with `content_type` (none when empty); the status and the JSON answer.
async fn post(app: &Router, uri: &str, content_type: &str, body: String) -> (StatusCode, Value) {
    let mut req = Request::builder().method("POST").uri(uri);
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    let req = req.body(Body::from(body)).expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{uri}: reply is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// Two clusters: green far from users, dirty close to them.
fn small() -> Value {
    json!({
        "at": "2026-06-15T12:00:00Z",
        "weights": "carbon",
        "clusters": [
            {"name": "green", "capacity": {"cpu": 64, "memory": "256Gi"},
             "allocated": {"cpu": 20},
             "power": {"idleWatts": 600, "maxWatts": 1800},
             "carbon": {"zone": "FR", "gPerKwh": 50}, "latencyMs": {"eu": 30}},
            {"name": "dirty", "capacity": {"cpu": 64, "memory": "256Gi"},
             "power": {"idleWatts": 600, "maxWatts": 1800},
             "carbon": {"zone": "PL", "gPerKwh": 700}, "latencyMs": {"eu": 5}}
        ],
        "workloads": [
            {"name": "web", "replicas": 4, "requests": {"cpu": "500m", "memory": "1Gi"},
             "latencySloMs": {"eu": 50}},
            {"name": "near", "replicas": 2, "requests": {"cpu": 1, "memory": 1073741824},
             "latencySloMs": {"eu": 10}}
        ]
    })
}

fn field_errors(v: &Value) -> Vec<(String, String)> {
    v["error"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn valid_request_answers_with_clusters_totals_and_status() {
    let (status, v) = post(
        &app(),
        "/v1/placements",
        "application/json",
        small().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    let placements = v["placements"].as_array().unwrap();
    assert_eq!(placements.len(), 2);
    // Carbon weights: web goes to the green cluster; near's SLO allows only dirty.
    assert_eq!(placements[0]["workload"], "web");
    assert_eq!(
        placements[0]["clusters"],
        json!([{"cluster": "green", "replicas": 4}])
    );
    assert_eq!(
        placements[1]["clusters"],
        json!([{"cluster": "dirty", "replicas": 2}])
    );
    assert_eq!(v["solver"]["status"], "optimal");
    assert!(v["solver"]["solveSeconds"].as_f64().unwrap() >= 0.0);
    assert!(v["totals"]["carbonG"].as_f64().unwrap() > 0.0);
    assert!(v["reference"]["carbonG"].as_f64().is_some());
    // The carbon-blind reference spreads web onto the dirty cluster too.
    assert!(v["savings"]["carbonG"].as_f64().unwrap() > 0.0, "{v:#}");
    assert_eq!(v["at"], "2026-06-15T12:00:00Z");
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    let app = app();
    let mut unknown = small();
    unknown["workloads"][1]["replica"] = json!(2);
    let mut wrong_type = small();
    wrong_type["workloads"][0]["replicas"] = json!("four");
    let mut bad_quantity = small();
    bad_quantity["clusters"][1]["capacity"]["memory"] = json!("lots");
    let mut missing = small();
    missing["clusters"][0]
        .as_object_mut()
        .unwrap()
        .remove("power");
    for (body, field, says) in [
        (unknown, "workloads[1].replica", "unknown field `replica`"),
        (wrong_type, "workloads[0].replicas", "invalid type"),
        (
            bad_quantity,
            "clusters[1].capacity.memory",
            "not a quantity",
        ),
        (missing, "clusters[0]", "missing field `power`"),
    ] {
        let (status, v) = post(&app, "/v1/placements", "application/json", body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v:#}");
        assert_eq!(v["error"]["kind"], "malformed");
        let errors = field_errors(&v);
        assert_eq!(errors[0].0, field, "{v:#}");
        assert!(errors[0].1.contains(says), "{v:#}");
    }
    let (status, v) = post(
        &app,
        "/v1/placements",
        "application/json",
        "{\"clusters\": [".into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["kind"], "malformed");
}

#[tokio::test]
async fn invalid_requests_list_every_bad_field() {
    let mut req = small();
    req["workloads"][0]["replicas"] = json!(0);
    req["workloads"][0]["requests"]["cpu"] = json!(-1);
    req["workloads"][1]["latencySloMs"]["eu"] = json!(0);
    req["workloads"][1]["allowedClusters"] = json!(["green", "blue"]);
    req["clusters"][1]["name"] = json!("green");
    req["clusters"][0]["power"]["maxWatts"] = json!(100);
    req["weights"] = json!("greenest");
    let (status, v) = post(
        &app(),
        "/v1/placements",
        "application/json",
        req.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v:#}");
    assert_eq!(v["error"]["kind"], "invalid");
    let errors = field_errors(&v);
    let fields: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "weights",
        "clusters[1].name",
        "clusters[0].power.maxWatts",
        "workloads[0].replicas",
        "workloads[0].requests.cpu",
        "workloads[1].latencySloMs.eu",
        "workloads[1].allowedClusters[1]",
    ] {
        assert!(fields.contains(&want), "{want} missing in {fields:?}");
    }
    let unknown = errors
        .iter()
        .find(|e| e.0 == "workloads[1].allowedClusters[1]")
        .unwrap();
    assert!(unknown.1.contains("unknown cluster `blue`"), "{unknown:?}");
}

#[tokio::test]
async fn infeasible_requests_name_each_workload_and_why() {
    let mut req = small();
    // Nothing is within 1 ms of eu; nothing has 100 cores free.
    req["workloads"][0]["latencySloMs"]["eu"] = json!(1);
    req["workloads"][1]["requests"]["cpu"] = json!(100);
    let (status, v) = post(
        &app(),
        "/v1/placements",
        "application/json",
        req.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v:#}");
    assert_eq!(v["error"]["kind"], "infeasible");
    let list = v["error"]["unplaceable"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v:#}");
    assert_eq!(list[0]["workload"], "web");
    let reason = list[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("latency") && reason.contains("closest: dirty"),
        "{reason}"
    );
    let dirty = &list[0]["eliminated"][1];
    assert_eq!(dirty["cluster"], "dirty");
    assert_eq!(dirty["details"][0]["reason"], "latency");
    assert_eq!(list[1]["workload"], "near");
    assert!(
        list[1]["reason"].as_str().unwrap().contains("room"),
        "{v:#}"
    );

    // Each fits alone, not together: the optimizer's aggregate explanation.
    let mut shared = small();
    shared["workloads"][1]["latencySloMs"] = json!({});
    shared["workloads"][0]["requests"]["cpu"] = json!(40);
    shared["workloads"][0]["replicas"] = json!(2);
    shared["workloads"][1]["requests"]["cpu"] = json!(30);
    shared["workloads"][1]["replicas"] = json!(2);
    shared["workloads"][0]["latencySloMs"] = json!({});
    let (status, v) = post(
        &app(),
        "/v1/placements",
        "application/json",
        shared.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v:#}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cpu"), "{msg}");
}

#[tokio::test]
async fn example_files_answer_as_yaml_bodies() {
    let app = app();
    let (status, v) = post(&app, "/v1/placements", "application/yaml", EXAMPLE.into()).await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    let placements = v["placements"].as_array().unwrap();
    assert_eq!(placements.len(), 5);
    for p in placements {
        let placed: u64 = p["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["replicas"].as_u64().unwrap())
            .sum();
        assert_eq!(placed, p["replicas"].as_u64().unwrap());
    }
    let (status, v) = post(&app, "/v1/rebalance", "application/yaml", REBALANCE.into()).await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    assert_eq!(v["mode"], "dry-run");
    assert!(v["advisory"].as_str().unwrap().contains("advisory"));
    let moves = v["moves"].as_array().unwrap();
    assert!(!moves.is_empty(), "{v:#}");
    for m in moves {
        assert!(m["gain"]["objective"].as_f64().unwrap() >= 0.05, "{m:#}");
        assert!(m["gain"]["carbonGPerHour"].as_f64().is_some());
    }
    assert_eq!(v["violations"], json!([]));
}

#[tokio::test]
async fn a_yaml_body_without_a_yaml_content_type_is_detected_or_told_what_to_send() {
    let app = app();
    // No content type, or curl's `-d` default: the body is YAML, so it is read as YAML.
    for ct in ["", "application/x-www-form-urlencoded", "text/plain"] {
        let (status, v) = post(&app, "/v1/placements", ct, EXAMPLE.into()).await;
        assert_eq!(status, StatusCode::OK, "`{ct}`: {v:#}");
        assert_eq!(v["placements"].as_array().unwrap().len(), 5, "`{ct}`");
        let (status, _) = post(&app, "/v1/rebalance", ct, REBALANCE.into()).await;
        assert_eq!(status, StatusCode::OK, "`{ct}`");
    }
    // A JSON body without a content type is still JSON.
    let (status, v) = post(&app, "/v1/placements", "", small().to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    // Declared JSON but YAML: the answer says what to send.
    for uri in ["/v1/placements", "/v1/rebalance"] {
        let (status, v) = post(&app, uri, "application/json", EXAMPLE.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v:#}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("the body is not JSON"), "{message}");
        assert!(
            message.contains("Content-Type: application/yaml"),
            "{message}"
        );
    }
    // Broken JSON gets no such hint: it is JSON, with a syntax error.
    let (_, v) = post(
        &app,
        "/v1/placements",
        "application/json",
        "{\"clusters\": [".into(),
    )
    .await;
    assert!(
        !v["error"]["message"].as_str().unwrap().contains("not JSON"),
        "{v:#}"
    );
}

#[tokio::test]
async fn rebalance_threshold_filters_moves_and_needs_current_placements() {
    let app = app();
    let mut req: Value = serde_yaml::from_str(REBALANCE).unwrap();
    req["minGain"] = json!(1000.0);
    let (status, v) = post(&app, "/v1/rebalance", "application/json", req.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    assert_eq!(v["moves"], json!([]));
    let skipped = v["skipped"].as_array().unwrap();
    assert!(!skipped.is_empty());
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("below the minimum")
    );
    // Placement after no moves = the current one.
    assert_eq!(
        v["placement"][2]["clusters"],
        json!([{"cluster": "us-east-1", "replicas": 4}])
    );

    let (status, v) = post(&app, "/v1/rebalance", "application/yaml", EXAMPLE.into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v:#}");
    let fields = field_errors(&v);
    assert_eq!(fields[0].0, "workloads[0].current");
}

#[tokio::test]
async fn the_service_router_serves_the_placement_routes() {
    let parts = runtime::demo(Config::default()).expect("demo parts");
    let router = Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("service starts")
        .router();
    let (status, v) = post(
        &router,
        "/v1/placements",
        "application/json",
        small().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
}
