//! Hostile and slow input: arbitrary bytes and mutated kube-scheduler bodies never panic
//! and never get a 500; a decision that misses the deadline fails open in time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use scheduler::config::Config;
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMES: &str = include_str!("fixtures/args-names.json");
const NODES: &str = include_str!("fixtures/args-nodes.json");

async fn app(config: Config) -> Router {
    common::demo_router(config).await
}

async fn post(app: &Router, verb: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/scheduler/{verb}"))
        .body(Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, bytes.to_vec())
}

/// One runtime and one demo extender for every proptest case.
fn shared() -> &'static (tokio::runtime::Runtime, Router) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let router = rt.block_on(app(Config::default()));
        (rt, router)
    })
}

/// Every reply is a 200 with a JSON body of the verb's shape, or a 400 with `{"error": …}`.
fn check(verb: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let (rt, router) = shared();
    let (status, reply) = rt.block_on(post(router, verb, body));
    let v: Value = serde_json::from_slice(&reply)
        .map_err(|e| TestCaseError::fail(format!("{status}: reply is not JSON: {e}")))?;
    match status {
        StatusCode::OK if verb == "prioritize" => prop_assert!(v.is_array()),
        StatusCode::OK => prop_assert_eq!(&v["Error"], &json!("")),
        StatusCode::BAD_REQUEST => prop_assert!(v["error"].as_str().is_some_and(|e| !e.is_empty())),
        other => prop_assert!(false, "status {other}: {v}"),
    }
    Ok(())
}

/// A fixture with some bytes overwritten, some removed, and a cut at the end.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::bool::ANY,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(names, flips, cuts, end)| {
            let mut b = if names { NAMES } else { NODES }.as_bytes().to_vec();
            for (i, byte) in flips {
                let at = i.index(b.len());
                b[at] = byte;
            }
            for i in cuts {
                if !b.is_empty() {
                    b.remove(i.index(b.len()));
                }
            }
            let keep = b.len() - end.index(b.len() / 4 + 1);
            b.truncate(keep);
            b
        })
}

/// Structurally valid JSON of the wrong shapes in the right places.
fn shapes() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9./=-]{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("name".to_string()),
                    Just("items".to_string()),
                    Just("spec".to_string()),
                    Just("containers".to_string()),
                    Just("resources".to_string()),
                    Just("requests".to_string()),
                    Just("annotations".to_string()),
                    Just("status".to_string()),
                    Just("allocatable".to_string()),
                    "[a-z]{1,6}".prop_map(String::from),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    (value.clone(), value.clone(), value).prop_map(|(pod, nodes, names)| {
        json!({"Pod": pod, "Nodes": nodes, "NodeNames": names})
            .to_string()
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_get_200_or_400(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check("filter", body.clone())?;
        check("prioritize", body)?;
    }

    #[test]
    fn mutated_kube_scheduler_bodies_get_200_or_400(body in mutated()) {
        check("filter", body.clone())?;
        check("prioritize", body)?;
    }

    #[test]
    fn wrong_shapes_get_200_or_400(body in shapes()) {
        check("filter", body.clone())?;
        check("prioritize", body)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_past_the_deadline_fails_open_in_time() {
    let config = Config::parse("extender:\n  deadlineMs: 1\n", "test.yaml").expect("config");
    let app = app(config).await;
    // 200 000 names take far longer than 1 ms to decode and decide.
    let names: Vec<String> = (0..200_000).map(|i| format!("node-{i}")).collect();
    let mut args: Value = serde_json::from_str(NAMES).expect("fixture");
    args["NodeNames"] = json!(names);
    let body = serde_json::to_vec(&args).expect("body");
    let started = Instant::now();
    let (status, reply) = post(&app, "prioritize", body).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&reply).expect("json");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 200_000, "no candidate dropped");
    assert!(list.iter().all(|e| e["Score"] == 5));
    assert!(took < Duration::from_secs(2), "answered in {took:?}");

    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .expect("request");
    let metrics = to_bytes(
        app.clone().oneshot(req).await.expect("metrics").into_body(),
        usize::MAX,
    )
    .await
    .expect("body");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("ecoplace_fail_open_total{reason=\"deadline\"} 1"),
        "{metrics}"
    );
}

/// A `Nodes` body of `n` copies of the fixture's first node (distinct names), each with 50
/// `status.images` as the kubelet reports them: about 11 kB per node.
fn many_nodes(n: usize) -> Vec<u8> {
    let mut args: Value = serde_json::from_str(NODES).expect("fixture");
    let template = args["Nodes"]["items"][0].clone();
    let images: Vec<Value> = (0..50)
        .map(|i| {
            json!({"names": [format!("registry.example/team/image-{i}@sha256:{:064x}", i),
                             format!("registry.example/team/image-{i}:v1.{i}.0")],
                   "sizeBytes": 100_000_000 + i})
        })
        .collect();
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let mut node = template.clone();
            node["metadata"]["name"] = json!(format!("big-node-{i}"));
            node["status"]["images"] = json!(images);
            node
        })
        .collect();
    args["Nodes"]["items"] = json!(items);
    serde_json::to_vec(&args).expect("body")
}

/// Full Node objects past the deadline, over a real socket: the filter hands every Node
/// back byte for byte without decoding the body again, prioritize answers an empty list,
/// both in time and with a correct Content-Length, and the abandoned decisions stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_past_the_deadline_fail_open_as_they_came() {
    let config = Config::parse("extender:\n  deadlineMs: 1\n", "test.yaml").expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app(config).await;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let body = many_nodes(1_500);
    assert!(body.len() > 15_000_000, "{} bytes", body.len());
    let client = reqwest::Client::new();
    let call = |verb: &str| {
        client
            .post(format!("http://{addr}/scheduler/{verb}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };

    let started = Instant::now();
    let resp = call("filter").await.expect("filter");
    assert_eq!(resp.status(), StatusCode::OK.as_u16());
    let length = resp.content_length();
    let reply = resp.bytes().await.expect("filter body");
    let took = started.elapsed();
    assert_eq!(length, Some(reply.len() as u64));
    let v: Value = serde_json::from_slice(&reply).expect("json");
    let sent: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v["Nodes"]["items"], sent["Nodes"]["items"],
        "every Node, unchanged"
    );
    assert_eq!(v["FailedNodes"], json!({}));
    assert_eq!(v["Error"], json!(""));
    // The items go back as the request's own bytes (compact JSON, as serde wrote them).
    let items = serde_json::to_vec(&sent["Nodes"]["items"]).expect("items");
    let items = &items[1..items.len() - 1];
    assert!(body.windows(items.len()).any(|w| w == items));
    assert!(reply.windows(items.len()).any(|w| w == items));
    assert!(took < Duration::from_secs(3), "filter answered in {took:?}");

    let started = Instant::now();
    let resp = call("prioritize").await.expect("prioritize");
    assert_eq!(resp.status(), StatusCode::OK.as_u16());
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"[]");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "prioritize answered in {took:?}"
    );

    let metrics = || async {
        let resp = client.get(format!("http://{addr}/metrics")).send().await;
        resp.expect("metrics").text().await.expect("text")
    };
    let m = metrics().await;
    assert!(
        m.contains("ecoplace_fail_open_total{reason=\"deadline\"} 2"),
        "{m}"
    );
    // The abandoned decisions stopped before deciding: nothing was scored.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m = metrics().await;
    for verb in ["filter", "prioritize"] {
        let scored = format!("ecoplace_decisions_total{{outcome=\"scored\",verb=\"{verb}\"}} 0");
        assert!(m.contains(&scored), "{m}");
    }
}
