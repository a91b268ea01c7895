//! Hostile HTTP input at both verbs: a body larger than `maxBodyBytes` streamed without a
//! Content-Length is refused with 413 after reading about the limit (not the whole body), and
//! JSON nested 100 000 deep is a 400 with a JSON error (serde_json's recursion limit, no
//! stack overflow), wherever in the request it sits. The same for the placement API, in
//! JSON and YAML (serde-saphyr's depth budget: nested YAML is refused in microseconds).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{Request, StatusCode};
use scheduler::config::Config;
use serde_json::Value;
use tower::ServiceExt;

const NAMES: &str = include_str!("fixtures/args-names.json");
const DEPTH: usize = 100_000;
const LIMIT: usize = 64 * 1024;

async fn demo(config: Config) -> Router {
    common::demo_router(config).await
}

/// The demo router with `extender.maxBodyBytes` = [`LIMIT`].
async fn limited() -> Router {
    let yaml = format!("extender:\n  maxBodyBytes: {LIMIT}\n");
    demo(Config::parse(&yaml, "test.yaml").expect("config")).await
}

async fn send(app: &Router, verb: &str, body: Body) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/scheduler/{verb}"))
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, bytes.to_vec())
}

/// A chunked body (no Content-Length) of `chunks` × `chunk` bytes that counts what the
/// server pulls from it.
fn counting_stream(chunks: usize, chunk: usize, pulled: Arc<AtomicUsize>) -> Body {
    let piece = Bytes::from(vec![b' '; chunk]);
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        pulled.fetch_add(piece.len(), Ordering::SeqCst);
        Ok::<Bytes, std::io::Error>(piece.clone())
    });
    Body::from_stream(stream)
}

use futures::StreamExt;

#[tokio::test]
async fn streamed_oversize_bodies_get_413_without_being_read_whole() {
    let app = limited().await;
    let (chunks, chunk) = (1_024, 16 * 1024); // 16 MiB offered
    let total = chunks * chunk;
    for verb in ["filter", "prioritize"] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let (status, _) = send(
            &app,
            verb,
            counting_stream(chunks, chunk, Arc::clone(&pulled)),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{verb}");
        let read = pulled.load(Ordering::SeqCst);
        assert!(
            read <= LIMIT + chunk,
            "{verb}: the server pulled {read} of {total} bytes with a {LIMIT}-byte limit"
        );
    }
    // A body just under the limit is still read and decoded (here: 400, it is not JSON).
    let pulled = Arc::new(AtomicUsize::new(0));
    let (status, body) = send(
        &app,
        "prioritize",
        counting_stream(LIMIT / 1024 - 1, 1024, Arc::clone(&pulled)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(pulled.load(Ordering::SeqCst), LIMIT - 1024);
    let v: Value = serde_json::from_slice(&body).expect("JSON error");
    assert!(v["error"].is_string(), "{v}");
}

#[tokio::test]
async fn oversize_content_length_is_refused_after_reading_at_most_the_limit() {
    let app = limited().await;
    for verb in ["filter", "prioritize"] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .method("POST")
            .uri(format!("/scheduler/{verb}"))
            .header("content-type", "application/json")
            .header("content-length", (LIMIT * 100).to_string())
            .body(counting_stream(100, LIMIT, Arc::clone(&pulled)))
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{verb}");
        let read = pulled.load(Ordering::SeqCst);
        // The limit is enforced on the bytes read (http-body-util `Limited`), so at most
        // one chunk past the limit is pulled, never the announced 100 × LIMIT.
        assert!(
            read <= 2 * LIMIT,
            "{verb}: the server pulled {read} bytes with a {LIMIT}-byte limit"
        );
    }
}

/// `{"a":` … `1` … `}` nested `depth` deep.
fn nested_objects(depth: usize) -> String {
    let mut s = "{\"a\":".repeat(depth);
    s.push('1');
    s.push_str(&"}".repeat(depth));
    s
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_with_a_json_error() {
    // What is asserted is the 400, not the time: give the decode of 100 000-deep bodies in
    // a debug build on a loaded CI box the longest deadline there is, so that it is not
    // answered by failing open (200) first.
    let mut config = Config::default();
    config.extender.deadline_ms = 999;
    let app = demo(config).await;
    let pod = {
        let v: Value = serde_json::from_str(NAMES).expect("fixture");
        v["Pod"].to_string()
    };
    let brackets = "[".repeat(DEPTH);
    let closed = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let bad = StatusCode::BAD_REQUEST;
    let bodies: Vec<(&str, String, StatusCode)> = vec![
        (
            "unclosed [ as NodeNames",
            format!("{{\"Pod\":{pod},\"NodeNames\":{brackets}"),
            bad,
        ),
        (
            "balanced [] as NodeNames",
            format!("{{\"Pod\":{pod},\"NodeNames\":{closed}}}"),
            bad,
        ),
        (
            "nested [] as the Pod",
            format!("{{\"Pod\":{closed},\"NodeNames\":[\"a\"]}}"),
            bad,
        ),
        (
            "nested [] as the containers",
            format!("{{\"Pod\":{{\"spec\":{{\"containers\":{closed}}}}},\"NodeNames\":[\"a\"]}}"),
            bad,
        ),
        (
            "nested [] as a Node item",
            format!("{{\"Pod\":{pod},\"Nodes\":{{\"items\":[{closed}]}}}}"),
            bad,
        ),
        (
            "nested {} as a Node item",
            format!(
                "{{\"Pod\":{pod},\"Nodes\":{{\"items\":[{}]}}}}",
                nested_objects(DEPTH)
            ),
            bad,
        ),
        (
            "unknown top-level key holding nested []",
            format!("{{\"Pod\":{pod},\"NodeNames\":[\"a\"],\"x\":{closed}}}"),
            bad,
        ),
        ("top-level [", brackets.clone(), bad),
        // Unknown fields inside the Pod are skipped without recursion: a normal reply.
        (
            "nested {} under an ignored Pod field",
            format!(
                "{{\"Pod\":{{\"metadata\":{{\"name\":\"p\",\"x\":{}}}}},\"NodeNames\":[\"a\"]}}",
                nested_objects(DEPTH)
            ),
            StatusCode::OK,
        ),
    ];
    for verb in ["filter", "prioritize"] {
        for (what, body, expect) in &bodies {
            let (status, resp) = send(&app, verb, Body::from(body.clone())).await;
            assert_eq!(
                status,
                *expect,
                "{verb}: {what}: {}",
                String::from_utf8_lossy(&resp)
            );
            let v: Value = serde_json::from_slice(&resp)
                .unwrap_or_else(|e| panic!("{verb}: {what}: not JSON ({e})"));
            if *expect == bad {
                let msg = v["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{verb}: {what}: {v}"));
                assert!(!msg.is_empty(), "{verb}: {what}");
            } else if verb == "prioritize" {
                assert!(v.is_array(), "{verb}: {what}: {v}");
            } else {
                assert!(
                    v.get("NodeNames").is_some() || v.get("FailedNodes").is_some(),
                    "{verb}: {what}: {v}"
                );
            }
        }
    }
    // The server is still answering normally afterwards.
    let (status, _) = send(&app, "prioritize", Body::from(NAMES)).await;
    assert_eq!(status, StatusCode::OK);
}

/// One placement-API call (`/v1/placements` or `/v1/rebalance`) with a content type.
async fn send_placement(
    app: &Router,
    path: &str,
    content_type: &str,
    body: Body,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, bytes.to_vec())
}

#[tokio::test]
async fn the_placement_api_refuses_oversize_and_deeply_nested_bodies() {
    let app = limited().await;
    let chunk = 16 * 1024;
    for path in ["/v1/placements", "/v1/rebalance"] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let body = counting_stream(1_024, chunk, Arc::clone(&pulled));
        let (status, _) = send_placement(&app, path, "application/json", body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(pulled.load(Ordering::SeqCst) <= LIMIT + chunk, "{path}");
    }
    let app = demo(Config::default()).await;
    let deep_json = format!(
        "{{\"clusters\": [], \"workloads\": [{{\"name\": \"w\", \"replicas\": 1, \"requests\": {{}}, \"latencySloMs\": {}}}]}}",
        nested_objects(DEPTH)
    );
    let deep_yaml = format!(
        "clusters: []\nworkloads:\n- name: w\n  labels: {}\n",
        "[".repeat(DEPTH)
    );
    for path in ["/v1/placements", "/v1/rebalance"] {
        for (ct, body) in [
            ("application/json", deep_json.clone()),
            ("application/json", "[".repeat(DEPTH)),
            ("application/yaml", deep_yaml.clone()),
            ("application/yaml", "[".repeat(DEPTH)),
        ] {
            let (status, bytes) = send_placement(&app, path, ct, Body::from(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {ct}");
            let v: Value = serde_json::from_slice(&bytes).expect("JSON error body");
            assert!(v.get("error").is_some(), "{path} {ct}: {v}");
        }
    }
}
