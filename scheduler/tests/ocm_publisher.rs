//! The OCM score publisher against an in-process fake hub apiserver: exact paths, verbs
//! and bodies, create-if-absent, 409 retries, stale and missing telemetry never refreshed,
//! unavailable clusters untouched, Lease hand-over between two publishers, and a running
//! publisher through a telemetry outage (no refresh from stale data, then recovery), and
//! the age of `ocm-scores`' snapshot on its `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ocm_hub;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kepler_client::carbon::CarbonCurves;
use kepler_client::snapshot::{ClusterPower, DataQuality, NodePower, Reading, Sample};
use kepler_client::{FleetSnapshot, Refresher, TelemetryError, TelemetrySource};
use ocm_hub::{Hub, MC, managed_cluster, score_path, start};
use optimizer::power::CurvePowerModel;
use scheduler::config::Config;
use scheduler::config::LeaseConfig;
use scheduler::lease::Leadership;
use scheduler::ocm::OcmSettings;
use scheduler::ocm::metrics::OcmMetrics;
use scheduler::ocm::publisher::Publisher;
use serde_json::{Value, json};

const GROUP_V1A1: &str = "/apis/cluster.open-cluster-management.io/v1alpha1";

struct Fixed(FleetSnapshot);

#[async_trait]
impl TelemetrySource for Fixed {
    async fn snapshot(&self, _now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
        Ok(self.0.clone())
    }
    fn describe(&self) -> String {
        "fixed test snapshot".into()
    }
}

fn node(now: DateTime<Utc>, sampled: DateTime<Utc>, total: f64) -> NodePower {
    let r = |v| {
        Reading::classify(
            Some(Sample {
                value: v,
                at: sampled,
            }),
            now,
            120.0,
        )
    };
    NodePower {
        total_watts: r(total),
        idle_watts: r(100.0),
        active_watts: r(total - 100.0),
        cpu_usage_ratio: r(0.4),
        gpu_watts: None,
    }
}

/// c1 (DE) and c2 (FR) fresh, c3 stale; c4 unavailable; c5 has no telemetry.
fn snapshot(now: DateTime<Utc>) -> FleetSnapshot {
    let old = now - chrono::Duration::hours(1);
    let cluster = |nodes: Vec<NodePower>| ClusterPower {
        nodes: nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| (format!("n{i}"), n))
            .collect(),
        pods: Vec::new(),
    };
    FleetSnapshot {
        taken_at: now,
        origin: "test".into(),
        schema: None,
        zone: "package".into(),
        stale_after_s: 120.0,
        clusters: BTreeMap::from([
            (
                "c1".into(),
                cluster(vec![node(now, now, 200.0), node(now, now, 220.0)]),
            ),
            (
                "c2".into(),
                cluster(vec![node(now, now, 200.0), node(now, now, 220.0)]),
            ),
            ("c3".into(), cluster(vec![node(now, old, 200.0)])),
        ]),
        quality: DataQuality::default(),
    }
}

fn config(period: u64) -> Config {
    let mut c = Config::default();
    c.ocm.enabled = true;
    c.ocm.period_seconds = period;
    c.ocm.user_regions = vec!["eu".into()];
    c.telemetry.stale_after_seconds = 120.0;
    c.topology.carbon_zones =
        BTreeMap::from([("de".into(), "DE".into()), ("fr".into(), "FR".into())]);
    c.topology.latency_ms = BTreeMap::from([
        ("de".into(), BTreeMap::from([("eu".into(), 10.0)])),
        ("fr".into(), BTreeMap::from([("eu".into(), 30.0)])),
    ]);
    c
}

async fn publisher(client: kube::Client, config: Config) -> Publisher {
    let refresher = Arc::new(Refresher::spawn(
        Arc::new(Fixed(snapshot(Utc::now()))),
        Duration::from_secs(3600),
    ));
    refresher.first_attempt().await;
    let carbon =
        CarbonCurves::static_table([("DE".to_string(), 350.0), ("FR".to_string(), 40.0)]).unwrap();
    Publisher {
        client,
        refresher,
        carbon: Arc::new(carbon),
        settings: Arc::new(OcmSettings::of(&config)),
        clock: Arc::new(Utc::now),
        power: Arc::new(CurvePowerModel::new()),
        metrics: ocm_metrics(),
    }
}

fn seed(hub: &Hub) {
    for (name, region, available) in [
        ("c1", "de", true),
        ("c2", "fr", true),
        ("c3", "de", true),
        ("c4", "fr", false),
        ("c5", "fr", true),
    ] {
        hub.put(
            &format!("{MC}/{name}"),
            managed_cluster(name, region, available, "16"),
        );
    }
}

fn scores(v: &Value) -> BTreeMap<String, i64> {
    v["status"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["value"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn condition(v: &Value) -> (String, String) {
    let c = &v["status"]["conditions"][0];
    assert_eq!(c["type"], "ScoresCurrent");
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn metric(p: &Publisher, result: &str) -> u64 {
    p.metrics.publish.with_label_values(&[result]).get()
}

#[tokio::test]
async fn one_round_writes_exact_requests_and_never_refreshes_stale_scores() {
    let (hub, client) = start().await;
    seed(&hub);
    // c3 was scored before: its old scores and expiry must survive untouched.
    let old = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1alpha1",
        "kind": "AddOnPlacementScore",
        "metadata": {"name": "ecoplace", "namespace": "c3"},
        "status": {"scores": [{"name": "ecoplace", "value": 42}],
            "validUntil": "2026-11-29T05:00:00Z"}
    });
    hub.put(&score_path("c3", "ecoplace"), old);
    let p = publisher(client, config(30)).await;
    let before = Utc::now();
    let round = p.publish_once().await.unwrap();
    assert_eq!(round.published, ["c1", "c2"]);
    assert_eq!(
        round.skipped,
        [
            ("c3".to_string(), "TelemetryStale".to_string()),
            ("c5".to_string(), "TelemetryMissing".to_string())
        ]
    );
    assert_eq!(round.unavailable, ["c4"]);
    assert!(round.failed.is_empty());

    let reqs = hub.score_requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", MC)
    );
    let c1: Vec<(String, String)> = reqs
        .iter()
        .filter(|r| r.path.contains("/namespaces/c1/"))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let item = format!("{GROUP_V1A1}/namespaces/c1/addonplacementscores/ecoplace");
    assert_eq!(
        c1,
        [
            ("GET".to_string(), item.clone()),
            (
                "POST".to_string(),
                format!("{GROUP_V1A1}/namespaces/c1/addonplacementscores")
            ),
            ("PUT".to_string(), format!("{item}/status")),
        ]
    );
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        post.body,
        json!({"apiVersion": "cluster.open-cluster-management.io/v1alpha1",
            "kind": "AddOnPlacementScore",
            "metadata": {"name": "ecoplace", "namespace": "c1"}})
    );
    let put = reqs
        .iter()
        .find(|r| r.method == "PUT" && r.path == format!("{item}/status"))
        .unwrap();
    assert!(put.body.get("spec").is_none());
    assert_eq!(
        put.body["apiVersion"],
        "cluster.open-cluster-management.io/v1alpha1"
    );
    assert_eq!(put.body["kind"], "AddOnPlacementScore");
    assert!(put.body["metadata"]["resourceVersion"].as_str().is_some());
    let until = put.body["status"]["validUntil"].as_str().unwrap();
    let until = DateTime::parse_from_rfc3339(until)
        .unwrap()
        .with_timezone(&Utc);
    let expect = before + chrono::Duration::seconds(60);
    assert!(
        (until - expect).num_seconds().abs() <= 2,
        "validUntil {until} vs {expect}"
    );
    assert_eq!(condition(&put.body), ("True".into(), "Published".into()));

    // FR's grid is cleaner: c2 leads carbon and the combined score; DE is closer to eu.
    let stored1 = hub.get(&item).unwrap();
    let stored2 = hub.get(&score_path("c2", "ecoplace")).unwrap();
    let (s1, s2) = (scores(&stored1), scores(&stored2));
    assert_eq!(
        s1.keys().collect::<Vec<_>>(),
        ["carbon", "ecoplace", "energy", "latency-eu"]
    );
    assert_eq!((s1["carbon"], s2["carbon"]), (-100, 100));
    assert_eq!((s1["latency-eu"], s2["latency-eu"]), (100, -100));
    assert_eq!((s1["energy"], s2["energy"]), (100, 100));
    assert!(s2["ecoplace"] > s1["ecoplace"]);

    // c3: stale telemetry, one status write keeping the old scores and expiry.
    let c3 = hub.get(&score_path("c3", "ecoplace")).unwrap();
    assert_eq!(scores(&c3), BTreeMap::from([("ecoplace".to_string(), 42)]));
    assert_eq!(c3["status"]["validUntil"], "2026-11-29T05:00:00Z");
    assert_eq!(condition(&c3), ("False".into(), "TelemetryStale".into()));
    assert!(
        !reqs
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("/c3/"))
    );
    // c5: no telemetry at all: created, no scores, already expired, the reason stated.
    let c5 = hub.get(&score_path("c5", "ecoplace")).unwrap();
    assert!(c5["status"].get("scores").is_none());
    assert_eq!(condition(&c5), ("False".into(), "TelemetryMissing".into()));
    assert!(
        c5["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no Kepler node series carry cluster `c5`")
    );
    // c4: not available: nothing written in its namespace.
    assert!(!reqs.iter().any(|r| r.path.contains("/namespaces/c4/")));

    assert_eq!(metric(&p, "published"), 2);
    assert_eq!(metric(&p, "telemetry_stale"), 1);
    assert_eq!(metric(&p, "telemetry_missing"), 1);
    assert_eq!(metric(&p, "cluster_unavailable"), 1);
    assert_eq!(p.metrics.failures.get(), 0);

    // Second round: objects exist, no create; an unchanged skip status is not rewritten.
    let n = hub.requests().len();
    p.publish_once().await.unwrap();
    let again = &hub.score_requests()[n..];
    assert!(again.iter().all(|r| r.method != "POST"), "{again:?}");
    assert!(
        !again
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/c3/"))
    );
}

#[tokio::test]
async fn conflicts_are_retried_then_counted_as_failures() {
    let (hub, client) = start().await;
    hub.put(&format!("{MC}/c1"), managed_cluster("c1", "de", true, "16"));
    let p = publisher(client, config(30)).await;
    hub.conflicts.store(2, std::sync::atomic::Ordering::SeqCst);
    let round = p.publish_once().await.unwrap();
    assert_eq!(round.published, ["c1"]);
    let puts: Vec<_> = hub
        .score_requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 3, "two 409s, then success");
    // Each retry re-reads and sends the then-current resourceVersion.
    let rvs: Vec<&Value> = puts
        .iter()
        .map(|r| &r.body["metadata"]["resourceVersion"])
        .collect();
    assert!(rvs[0] != rvs[1] && rvs[1] != rvs[2], "{rvs:?}");

    // A second later validUntil (whole seconds) moves on, so the status is rewritten.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hub.conflicts
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let round = p.publish_once().await.unwrap();
    assert_eq!(round.failed.len(), 1);
    assert_eq!(p.metrics.failures.get(), 1);
    assert_eq!(metric(&p, "failed"), 1);
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_publishes_and_a_peer_takes_over() {
    let (hub, client) = start().await;
    hub.put(&format!("{MC}/c1"), managed_cluster("c1", "de", true, "16"));
    let lease = LeaseConfig {
        name: "ecoplace-ocm-scores".into(),
        namespace: Some("ecoplace".into()),
        duration_seconds: 2,
        renew_before_seconds: 1,
    };
    let a = Leadership::join(client.clone(), &lease, "ecoplace", "replica-a")
        .await
        .unwrap();
    wait_for("a to lead", 10, || a.is_leader()).await;
    let b = Leadership::join(client.clone(), &lease, "ecoplace", "replica-b")
        .await
        .unwrap();
    let pa = Arc::new(publisher(client.clone(), config(1)).await);
    let pb = Arc::new(publisher(client.clone(), config(1)).await);
    let (ma, mb) = (pa.metrics.clone(), pb.metrics.clone());
    let run = |p: &Arc<Publisher>, rx| {
        let p = Publisher {
            client: p.client.clone(),
            refresher: Arc::clone(&p.refresher),
            carbon: Arc::clone(&p.carbon),
            settings: Arc::clone(&p.settings),
            clock: Arc::clone(&p.clock),
            power: Arc::clone(&p.power),
            metrics: p.metrics.clone(),
        };
        tokio::spawn(p.run(rx))
    };
    let task_a = run(&pa, a.subscribe());
    let task_b = run(&pb, b.subscribe());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let published = |m: &OcmMetrics| m.publish.with_label_values(&["published"]).get();
    assert!(published(&ma) >= 2, "the holder publishes every period");
    assert_eq!(published(&mb), 0, "the other replica does not");
    assert_eq!((ma.leader.get(), mb.leader.get()), (1, 0));
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/ecoplace/leases/ecoplace-ocm-scores";
    assert_eq!(
        hub.get(lease_path).unwrap()["spec"]["holderIdentity"],
        "replica-a"
    );

    // a dies without releasing: it stops renewing, and its publisher stops with it.
    a.abandon();
    wait_for("a's publisher to stop", 5, || task_a.is_finished()).await;
    let a_total = published(&ma);
    wait_for("b to lead", 15, || b.is_leader()).await;
    wait_for("b to publish", 5, || published(&mb) >= 1).await;
    assert_eq!(
        hub.get(lease_path).unwrap()["spec"]["holderIdentity"],
        "replica-b"
    );
    assert_eq!(published(&ma), a_total);
    assert_eq!(mb.leader.get(), 1);
    task_b.abort();
}

/// `snapshot(now)` until `failing` is set, then "Prometheus unreachable".
struct Switch(Arc<AtomicBool>);

#[async_trait]
impl TelemetrySource for Switch {
    async fn snapshot(&self, now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(TelemetryError::Unreachable {
                url: "http://prometheus.test:9090".into(),
                message: "connection refused".into(),
            });
        }
        Ok(snapshot(now))
    }
    fn describe(&self) -> String {
        "switchable test telemetry".into()
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Status PUTs of `cluster` among `reqs`: (condition status, reason, scores, validUntil, message).
type Put = (String, String, BTreeMap<String, i64>, DateTime<Utc>, String);

fn status_puts(reqs: &[ocm_hub::Req], cluster: &str) -> Vec<Put> {
    let path = format!("{}/status", score_path(cluster, "ecoplace"));
    reqs.iter()
        .filter(|r| r.method == "PUT" && r.path == path)
        .map(|r| {
            let (status, reason) = condition(&r.body);
            let scores = match r.body["status"].get("scores") {
                Some(_) => scores(&r.body),
                None => BTreeMap::new(),
            };
            let message = r.body["status"]["conditions"][0]["message"]
                .as_str()
                .unwrap()
                .to_string();
            (
                status,
                reason,
                scores,
                time(&r.body["status"]["validUntil"]),
                message,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_publisher_never_refreshes_scores_from_stale_telemetry_and_recovers() {
    let (hub, client) = start().await;
    for (name, region) in [("c1", "de"), ("c2", "fr")] {
        hub.put(
            &format!("{MC}/{name}"),
            managed_cluster(name, region, true, "16"),
        );
    }
    let failing = Arc::new(AtomicBool::new(false));
    let refresher = Arc::new(Refresher::spawn(
        Arc::new(Switch(Arc::clone(&failing))),
        Duration::from_millis(200),
    ));
    refresher.first_attempt().await;
    let stale_after = 3.0;
    let mut config = config(1);
    config.telemetry.stale_after_seconds = stale_after;
    let carbon =
        CarbonCurves::static_table([("DE".to_string(), 350.0), ("FR".to_string(), 40.0)]).unwrap();
    let metrics = ocm_metrics();
    let publisher = Publisher {
        client,
        refresher: Arc::clone(&refresher),
        carbon: Arc::new(carbon),
        settings: Arc::new(OcmSettings::of(&config)),
        clock: Arc::new(Utc::now),
        power: Arc::new(CurvePowerModel::new()),
        metrics: metrics.clone(),
    };
    let (leader, rx) = tokio::sync::watch::channel(true);
    let task = tokio::spawn(publisher.run(rx));
    let published = |m: &OcmMetrics| m.publish.with_label_values(&["published"]).get();
    let stale = |m: &OcmMetrics| m.publish.with_label_values(&["telemetry_stale"]).get();
    let puts =
        |hub: &Arc<ocm_hub::Hub>, from: usize, c: &str| status_puts(&hub.requests()[from..], c);

    // Healthy: both clusters published, every round.
    wait_for("two published rounds", 10, || published(&metrics) >= 4).await;

    // Fault: every refresh fails from now on; the refresher keeps the last snapshot.
    failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let from = hub.requests().len();
    let before: Vec<Put> = ["c1", "c2"]
        .iter()
        .map(|c| status_puts(&hub.requests()[..from], c).pop().unwrap())
        .collect();
    for p in &before {
        assert_eq!((p.0.as_str(), p.1.as_str()), ("True", "Published"), "{p:?}");
    }
    let state = refresher.latest();
    assert!(state.last_error.is_some(), "refreshes fail");
    let taken = state.snapshot.as_ref().unwrap().taken_at;
    let stale_at = taken + chrono::Duration::milliseconds((stale_after * 1000.0) as i64);
    wait_for("two stale rounds", 15, || stale(&metrics) >= 4).await;
    let during: Vec<Vec<Put>> = ["c1", "c2"].iter().map(|c| puts(&hub, from, c)).collect();
    let published_during = published(&metrics);

    // Recovery: refreshes succeed again, publishing resumes by itself.
    failing.store(false, Ordering::SeqCst);
    let back = hub.requests().len();
    let back_at = std::time::Instant::now();
    wait_for("published again", 10, || {
        ["c1", "c2"].iter().all(|c| {
            puts(&hub, back, c)
                .iter()
                .any(|p| p.1 == "Published" && p.3 > stale_at + chrono::Duration::seconds(1))
        })
    })
    .await;
    let resumed_in = back_at.elapsed();
    drop(leader);
    wait_for("the publisher to stop", 5, || task.is_finished()).await;

    for (cluster, (last_good, puts)) in ["c1", "c2"].iter().zip(before.iter().zip(&during)) {
        let first_stale = puts
            .iter()
            .position(|p| p.1 == "TelemetryStale")
            .unwrap_or_else(|| {
                panic!("{cluster}: a TelemetryStale status during the fault: {puts:#?}")
            });
        let mut until = last_good.3;
        for (i, p) in puts.iter().enumerate() {
            // Never valid past the moment the last snapshot turned stale (1 s: the
            // written time's precision); never pushed on once skipping began.
            assert!(
                p.3 <= stale_at + chrono::Duration::seconds(1),
                "{cluster}: validUntil {} past the data's staleness {stale_at}: {p:?}",
                p.3
            );
            // Scores in every PUT are the last ones computed from fresh data.
            assert_eq!(
                p.2, last_good.2,
                "{cluster}: no new scores during the fault"
            );
            if i < first_stale {
                // Before the snapshot turned stale it may be re-scored (same data, same
                // scores), and the message names the data's time, not the write's.
                assert_eq!(p.1, "Published", "{cluster}: {p:?}");
                assert!(
                    p.4.contains(&format!("taken at {taken}")),
                    "{cluster}: {}",
                    p.4
                );
            } else {
                assert_eq!(
                    (p.0.as_str(), p.1.as_str()),
                    ("False", "TelemetryStale"),
                    "{cluster}: once stale, never published again during the fault: {p:?}"
                );
                assert_eq!(
                    p.3, until,
                    "{cluster}: validUntil not extended while skipped"
                );
                assert!(
                    p.4.starts_with("scores not refreshed (they expire)"),
                    "{}",
                    p.4
                );
            }
            until = p.3;
        }
    }
    assert_eq!(metrics.failures.get(), 0, "every write succeeded");
    for (cluster, puts) in ["c1", "c2"].iter().zip(&during) {
        let skipped = puts.iter().filter(|p| p.1 == "TelemetryStale").count();
        eprintln!(
            "{cluster}: {} status PUTs during the fault: {} re-scored from the last snapshot before it turned stale, {skipped} TelemetryStale",
            puts.len(),
            puts.len() - skipped
        );
    }
    eprintln!(
        "published {published_during} before recovery, {} in all; resumed {resumed_in:?} after the source recovered",
        published(&metrics)
    );
}

/// The publisher's metrics in a registry of their own.
fn ocm_metrics() -> OcmMetrics {
    let registry = prometheus::Registry::new();
    let carbon = scheduler::fleet::CarbonGauges::register(&registry).unwrap();
    OcmMetrics::register(&registry, &carbon).unwrap()
}

async fn metrics_text(app: axum::Router) -> String {
    use tower::ServiceExt as _;
    let res = app
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn ocm_scores_metrics_export_the_age_of_its_snapshot() {
    use prometheus::Registry;
    use scheduler::commands::ocm_scores;
    let now = Utc::now();
    let refresher = Arc::new(Refresher::spawn(
        Arc::new(Fixed(snapshot(now - chrono::Duration::seconds(100)))),
        Duration::from_secs(3600),
    ));
    refresher.first_attempt().await;
    let clock = Arc::new(std::sync::Mutex::new(now));
    let read = Arc::clone(&clock);
    let app = ocm_scores::router(
        refresher,
        Registry::new(),
        Arc::new(move || *read.lock().unwrap()),
    )
    .unwrap();
    let age = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("ecoplace_telemetry_age_seconds "))
            .unwrap_or_else(|| panic!("no age in {text}"))
            .to_string()
    };
    assert_eq!(age(metrics_text(app.clone()).await), "100");
    // Set at each scrape: 30 s later the same snapshot is 130 s old.
    *clock.lock().unwrap() = now + chrono::Duration::seconds(30);
    assert_eq!(age(metrics_text(app).await), "130");

    // No snapshot at all: −1, as the extender says it.
    let refresher = Arc::new(Refresher::spawn(
        Arc::new(Switch(Arc::new(AtomicBool::new(true)))),
        Duration::from_secs(3600),
    ));
    refresher.first_attempt().await;
    let app = ocm_scores::router(refresher, Registry::new(), Arc::new(move || now)).unwrap();
    assert_eq!(age(metrics_text(app).await), "-1");
}
