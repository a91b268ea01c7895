//! The extender fed by a real Prometheus scraping the simulated fleet as Kepler v0.10
//! exporters: decisions use the scraped utilisation and the configured carbon, and when
//! Prometheus dies the extender fails open once telemetry goes stale.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kepler_client::{KeplerSchema, PrometheusSource, SimulatedFleet};
use scheduler::config::Config;
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tests::kepler::serve_fleet;

const NAMES: &str = include_str!("../../scheduler/tests/fixtures/args-names.json");

fn config(prom_url: &str) -> Config {
    tests::extender::extender_config(prom_url, 2.0, 4.0).unwrap()
}

async fn post(client: &reqwest::Client, base: &str, verb: &str, body: &str) -> Value {
    tests::extender::post(client, base, verb, body)
        .await
        .unwrap()
}

async fn text(client: &reqwest::Client, url: String) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_feeds_the_extender_and_its_loss_fails_open() {
    let fleet = Arc::new(SimulatedFleet::embedded(42));
    let exporters = serve_fleet(fleet.clone(), KeplerSchema::V010)
        .await
        .unwrap();
    let mut prom = exporters.prometheus().await.unwrap();
    prom.wait_for_scrapes("kepler_node_cpu_usage_ratio", fleet.nodes.len())
        .await
        .unwrap();

    // The demo's node facts and power profiles; telemetry, carbon and the clock are live.
    let mut parts = runtime::demo(config(&prom.url())).unwrap();
    let source = PrometheusSource::new(parts.config.telemetry.prometheus.clone().unwrap()).unwrap();
    parts.carbon = runtime::carbon(&parts.config, Some(&source)).unwrap();
    parts.telemetry = Arc::new(source);
    parts.clock = Arc::new(Utc::now);
    let svc = Service::start(parts, Duration::from_millis(500))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, svc.router()).into_future());
    let client = reqwest::Client::new();

    let (status, ready) = text(&client, format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{ready}");

    // Every node's utilisation is Kepler's scraped kepler_node_cpu_usage_ratio.
    let view = svc.extender.view();
    assert_eq!(view.targets.len(), fleet.nodes.len());
    let states = fleet.node_states(view.inputs.built_at);
    let snapshot = view.inputs.snapshot.clone().unwrap();
    for (i, node) in fleet.nodes.iter().enumerate() {
        let t = &view.targets[view.index[&node.name]];
        let scraped = snapshot
            .clusters
            .values()
            .find_map(|c| c.nodes.get(&node.name))
            .and_then(|n| n.cpu_usage_ratio.fresh())
            .unwrap();
        assert!((t.utilisation - scraped).abs() < 1e-9, "{}", node.name);
        assert!(
            (t.utilisation - states[i].usage_ratio).abs() < 0.05,
            "{}: scraped {} vs fleet {}",
            node.name,
            t.utilisation,
            states[i].usage_ratio
        );
        assert_eq!(t.carbon.now_g_per_kwh, [420.0, 70.0, 350.0][node.cluster]);
    }

    let prio = post(&client, &base, "prioritize", NAMES).await;
    let score = |v: &Value, n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["Host"] == n)
            .unwrap()["Score"]
            .as_i64()
            .unwrap()
    };
    assert!(
        score(&prio, "fr-arm-eff-1") > score(&prio, "de-old-x86-0"),
        "{prio}"
    );
    assert_eq!(score(&prio, "not-in-the-cache"), 5);
    let (_, metrics) = text(&client, format!("{base}/metrics")).await;
    assert!(metrics.contains("ecoplace_decisions_total{outcome=\"scored\",verb=\"prioritize\"} 1"));

    // Prometheus dies: the last snapshot ages past staleAfterSeconds (4 s) and the
    // extender fails open — every candidate passes, neutral scores — and says why.
    prom.stop().unwrap();
    let started = Instant::now();
    loop {
        let (status, ready) = text(&client, format!("{base}/readyz")).await;
        if ready.contains("telemetry_stale") {
            assert_eq!(
                status, 200,
                "stale telemetry fails open but stays ready: {ready}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never went stale: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let prio = post(&client, &base, "prioritize", NAMES).await;
    assert!(
        prio.as_array().unwrap().iter().all(|e| e["Score"] == 5),
        "{prio}"
    );
    let filter = post(&client, &base, "filter", NAMES).await;
    assert_eq!(filter["NodeNames"].as_array().map(Vec::len), Some(5));
    assert_eq!(filter["FailedNodes"], json!({}));
    let (_, metrics) = text(&client, format!("{base}/metrics")).await;
    assert!(
        metrics.contains("ecoplace_fail_open_total{reason=\"telemetry_stale\"} 2"),
        "{metrics}"
    );
    let age: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ecoplace_telemetry_age_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(age > 4.0, "telemetry age {age}");
}
