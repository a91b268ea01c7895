//! The extender's node facts under apiserver faults, against the in-process fake apiserver,
//! while extender calls keep coming over the router: watches that end cleanly, are cut off
//! mid-stream, or meet a short outage are re-established without failing open; an
//! apiserver that keeps failing (watches cut off, then 410 Expired, re-lists 500) makes names-mode calls fail open with `nodes_stale` after
//! `kubernetes.watchStaleAfterSeconds`, says so in `/metrics` and `/readyz`, and recovers
//! by itself (re-list, re-watch) when the apiserver is back. Every call is answered 200
//! within the deadline throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use fake_apiserver::{Fake, container, node, pod, start};
use scheduler::config::Config;
use scheduler::extender::metrics::ExtenderMetrics;
use scheduler::fleet::KubeNodes;
use scheduler::fleet::{ViewMetrics, WatchMetrics};

/// The metrics the tests read: the extender's, the watches' and the view's.
#[derive(Clone)]
struct Metrics {
    extender: ExtenderMetrics,
    watch: WatchMetrics,
    view: ViewMetrics,
}
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMES: &str = include_str!("fixtures/args-names.json");
/// The extender's deadline (the default `extender.deadlineMs`).
const DEADLINE: Duration = Duration::from_millis(250);
/// Allowance on top of the deadline for a starved test process on a shared 2-core machine.
const SLACK: Duration = Duration::from_millis(250);

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn add_node(f: &Fake, name: &str) {
    f.change(
        "nodes",
        "Node",
        node(name, json!({"cpu": "8", "memory": "32Gi"})),
        false,
    );
}

fn seed(f: &Fake) {
    for n in ["node-a", "node-b", "node-c"] {
        add_node(f, n);
    }
    f.change(
        "pods",
        "Pod",
        pod(
            "api-0",
            Some("node-a"),
            "Running",
            json!({"containers": [container("app", json!({"cpu": "2", "memory": "4Gi"}))]}),
        ),
        false,
    );
}

/// The demo's telemetry and carbon with node facts from `KubeNodes` on the fake, names
/// mode, views rebuilt every 100 ms, watches stale after `grace_s`.
async fn extender(fake: &Fake, grace_s: f64) -> (Router, Metrics) {
    let mut config = Config::default();
    config.kubernetes.watch_stale_after_seconds = grace_s;
    let mut parts = runtime::demo(config).expect("demo parts");
    parts
        .config
        .topology
        .carbon_zones
        .insert("fr".into(), "FR".into());
    parts.clock = Arc::new(noon);
    let watch = parts.watch_metrics.clone();
    parts.nodes = Arc::new(KubeNodes::spawn(fake.kube_config(), &watch).expect("watches"));
    let svc = Service::start(parts, Duration::from_millis(100))
        .await
        .expect("starts");
    let metrics = Metrics {
        extender: svc.extender.metrics().clone(),
        watch,
        view: svc.view_metrics.clone(),
    };
    (svc.router(), metrics)
}

fn body() -> String {
    let mut args: Value = serde_json::from_str(NAMES).unwrap();
    args["NodeNames"] = json!(["node-a", "node-b", "node-c", "node-d"]);
    args.to_string()
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

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Calls filter and prioritize in turn until stopped; returns each call's status and time.
fn load(
    app: Router,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(StatusCode, Duration)>> {
    tokio::spawn(async move {
        let body = body();
        let mut seen = Vec::new();
        for verb in ["filter", "prioritize"].iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let req = Request::builder()
                .method("POST")
                .uri(format!("/scheduler/{verb}"))
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let started = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            seen.push((status, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

/// Every call 200, none slower than the deadline (plus slack); returns (calls, slowest).
fn check_calls(seen: &[(StatusCode, Duration)]) -> (usize, Duration) {
    assert!(seen.len() > 20, "the load ran: {} calls", seen.len());
    for (status, _) in seen {
        assert_eq!(*status, StatusCode::OK);
    }
    let slowest = seen.iter().map(|(_, d)| *d).max().unwrap_or_default();
    assert!(
        slowest <= DEADLINE + SLACK,
        "slowest call {slowest:?} (deadline {DEADLINE:?})"
    );
    (seen.len(), slowest)
}

fn fail_open(m: &Metrics, reason: &str) -> u64 {
    m.extender.fail_open.with_label_values(&[reason]).get()
}

fn failing_open(m: &Metrics) -> u64 {
    ["filter", "prioritize"]
        .iter()
        .map(|v| {
            m.extender
                .decisions
                .with_label_values(&[v, "fail_open"])
                .get()
        })
        .sum()
}

fn scored(m: &Metrics) -> u64 {
    ["filter", "prioritize"]
        .iter()
        .map(|v| m.extender.decisions.with_label_values(&[v, "scored"]).get())
        .sum()
}

fn up(m: &Metrics, watch: &str) -> i64 {
    m.watch.watch_up.with_label_values(&[watch]).get()
}

fn errors(m: &Metrics, watch: &str) -> u64 {
    m.watch.watch_errors.with_label_values(&[watch]).get()
}

fn known(m: &Metrics) -> f64 {
    m.view.nodes_known.get()
}

/// Starts the fake and the extender, waits for the watches to sync and scored decisions.
async fn running(grace_s: f64) -> (Arc<Fake>, Router, Metrics) {
    let (fake, _gate, _client) = start(true).await;
    seed(&fake);
    let (app, metrics) = extender(&fake, grace_s).await;
    eventually(10, "3 nodes known, both watches up", || {
        known(&metrics) == 3.0 && up(&metrics, "nodes") == 1 && up(&metrics, "pods") == 1
    })
    .await;
    (fake, app, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_that_end_are_cut_off_or_blip_do_not_fail_open() {
    let (fake, app, m) = running(3.0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = load(app.clone(), Arc::clone(&stop));
    eventually(5, "scored decisions", || scored(&m) >= 10).await;

    // A clean end (the apiserver's own watch timeout): kube re-watches; no error.
    let watches = fake.data().watch_queries.len();
    fake.close_watches(false);
    eventually(5, "both watches re-established", || {
        fake.data().watch_queries.len() >= watches + 2
    })
    .await;
    add_node(&fake, "node-d");
    eventually(5, "node-d through the new watch", || known(&m) == 4.0).await;
    assert_eq!((errors(&m, "nodes"), errors(&m, "pods")), (0, 0));
    assert_eq!((up(&m, "nodes"), up(&m, "pods")), (1, 1));

    // Cut off mid-stream (no final chunk): kube reads it as an unexpected EOF, which it
    // resumes like a timeout — a re-watch, no error.
    let watches = fake.data().watch_queries.len();
    fake.close_watches(true);
    eventually(5, "both watches re-established after the cut", || {
        fake.data().watch_queries.len() >= watches + 2
    })
    .await;
    add_node(&fake, "node-e");
    eventually(5, "node-e through the re-established watch", || {
        known(&m) == 5.0
    })
    .await;
    assert_eq!((errors(&m, "nodes"), errors(&m, "pods")), (0, 0));

    // A short outage (300 ms): the re-watches get 410 Expired and the re-lists may get 500
    // (errors, watch_up 0), then the re-list succeeds within the backoff, inside the grace.
    fake.set_failing(true);
    fake.close_watches(false);
    add_node(&fake, "node-f");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.set_failing(false);
    eventually(5, "the outage seen as errors on both watches", || {
        errors(&m, "nodes") >= 1 && errors(&m, "pods") >= 1
    })
    .await;
    eventually(10, "both watches up again, node-f listed", || {
        up(&m, "nodes") == 1 && up(&m, "pods") == 1 && known(&m) == 6.0
    })
    .await;
    let before = scored(&m);
    eventually(5, "more scored decisions", || scored(&m) >= before + 10).await;

    stop.store(true, Ordering::Relaxed);
    let seen = calls.await.unwrap();
    let (n, slowest) = check_calls(&seen);
    assert_eq!(failing_open(&m), 0, "no call failed open");
    assert_eq!(fail_open(&m, "nodes_stale"), 0);
    let (status, ready) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(ready.contains("nodes: synced (6 known)"), "{ready}");
    eprintln!("{n} calls, slowest {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_outage_fails_open_after_the_grace_and_recovers_by_itself() {
    let grace = Duration::from_millis(1500);
    let (fake, app, m) = running(grace.as_secs_f64()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = load(app.clone(), Arc::clone(&stop));
    eventually(5, "scored decisions", || scored(&m) >= 10).await;
    assert_eq!(failing_open(&m), 0);

    // The apiserver fails: open watches are cut off, new watches get 410 Expired, and the
    // re-lists that follow get 500.
    let fault = Instant::now();
    fake.set_failing(true);
    fake.close_watches(true);
    eventually(5, "both watches down", || {
        up(&m, "nodes") == 0 && up(&m, "pods") == 0
    })
    .await;
    assert_eq!(
        fail_open(&m, "nodes_stale"),
        0,
        "failing for {:?}, within the grace",
        fault.elapsed()
    );
    add_node(&fake, "node-d");
    eventually(10, "names-mode calls failing open (nodes_stale)", || {
        fail_open(&m, "nodes_stale") > 0
    })
    .await;
    let stale_after = fault.elapsed();
    assert!(
        stale_after >= grace && stale_after <= grace + Duration::from_secs(3),
        "fail-open began {stale_after:?} into the fault (grace {grace:?})"
    );
    let first = fail_open(&m, "nodes_stale");
    eventually(5, "fail-open rising", || {
        fail_open(&m, "nodes_stale") >= first + 10
    })
    .await;
    let (status, ready) = get(&app, "/readyz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "stays ready, answering neutrally: {ready}"
    );
    assert!(
        ready.contains("nodes: stale, failing open (nodes_stale)")
            && ready.contains("nodes watch failing for")
            && ready.contains("pods watch failing for"),
        "{ready}"
    );
    let (_, text) = get(&app, "/metrics").await;
    for line in [
        "ecoplace_watch_up{watch=\"nodes\"} 0",
        "ecoplace_watch_up{watch=\"pods\"} 0",
    ] {
        assert!(text.contains(line), "missing {line}");
    }
    assert!(
        text.contains("ecoplace_fail_open_total{reason=\"nodes_stale\"}"),
        "fail-open reason exported"
    );
    assert!(errors(&m, "nodes") >= 2 && errors(&m, "pods") >= 2);
    assert!(fake.failed_calls.load(Ordering::Relaxed) >= 4);
    assert_eq!(known(&m), 3.0, "node-d is not visible during the outage");

    // The apiserver is back: re-list and re-watch, nothing restarted.
    fake.set_failing(false);
    let back = Instant::now();
    eventually(30, "both watches up, node-d listed", || {
        up(&m, "nodes") == 1 && up(&m, "pods") == 1 && known(&m) == 4.0
    })
    .await;
    let recovered_in = back.elapsed();
    // Let the view in flight be replaced, then no more fail-open while calls keep coming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stale, scored_before) = (fail_open(&m, "nodes_stale"), scored(&m));
    eventually(5, "scored decisions again", || {
        scored(&m) >= scored_before + 20
    })
    .await;
    assert_eq!(
        fail_open(&m, "nodes_stale"),
        stale,
        "no fail-open after recovery"
    );
    let (status, ready) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready.contains("nodes: synced (4 known)"), "{ready}");

    stop.store(true, Ordering::Relaxed);
    let seen = calls.await.unwrap();
    let (n, slowest) = check_calls(&seen);
    eprintln!(
        "{n} calls, slowest {slowest:?}; fail-open {stale_after:?} into the fault, {stale} nodes_stale; recovered {recovered_in:?} after the apiserver came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_re_established_watch_counts_as_recovered() {
    // Only watch calls fail (500): kube keeps retrying the watch from its resourceVersion
    // without re-listing, and a successful re-watch in a quiet cluster yields no object at
    // all — only the client layer's 2xx (plus the settle time) can end the failure.
    let grace = Duration::from_millis(1500);
    let (fake, app, m) = running(grace.as_secs_f64()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = load(app.clone(), Arc::clone(&stop));
    eventually(5, "scored decisions", || scored(&m) >= 10).await;
    let lists = fake.data().node_lists;

    fake.failing_watches.store(true, Ordering::SeqCst);
    fake.close_watches(false);
    eventually(10, "names-mode calls failing open (nodes_stale)", || {
        fail_open(&m, "nodes_stale") > 0 && up(&m, "nodes") == 0 && up(&m, "pods") == 0
    })
    .await;
    fake.failing_watches.store(false, Ordering::SeqCst);
    let back = Instant::now();
    eventually(40, "both watches up again", || {
        up(&m, "nodes") == 1 && up(&m, "pods") == 1
    })
    .await;
    let recovered_in = back.elapsed();
    assert_eq!(
        fake.data().node_lists,
        lists,
        "no re-list: recovered by the re-watch"
    );
    assert_eq!(known(&m), 3.0, "no object arrived");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stale, scored_before) = (fail_open(&m, "nodes_stale"), scored(&m));
    eventually(5, "scored decisions again", || {
        scored(&m) >= scored_before + 20
    })
    .await;
    assert_eq!(
        fail_open(&m, "nodes_stale"),
        stale,
        "no fail-open after recovery"
    );

    stop.store(true, Ordering::Relaxed);
    let (n, slowest) = check_calls(&calls.await.unwrap());
    eprintln!(
        "{n} calls, slowest {slowest:?}; {stale} nodes_stale; up {recovered_in:?} after watches worked again"
    );
}
