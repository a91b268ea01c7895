//! The OCM score publisher against an in-process fake hub apiserver: exact paths, verbs
//! and bodies, create-if-absent, 409 retries, stale and missing telemetry never refreshed,
//! unavailable clusters untouched, and Lease hand-over between two publishers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ocm_hub;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kepler_client::carbon::CarbonCurves;
use kepler_client::snapshot::{ClusterPower, DataQuality, NodePower, Reading, Sample};
use kepler_client::{FleetSnapshot, Refresher, TelemetryError, TelemetrySource};
use ocm_hub::{Hub, MC, managed_cluster, score_path, start};
use optimizer::power::CurvePowerModel;
use scheduler::config::Config;
use scheduler::ocm::LeaseConfig;
use scheduler::ocm::leader::Leadership;
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
        config: Arc::new(config),
        clock: Arc::new(Utc::now),
        power: Arc::new(CurvePowerModel::new()),
        metrics: OcmMetrics::register(&prometheus::Registry::new()).unwrap(),
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
            config: Arc::clone(&p.config),
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
