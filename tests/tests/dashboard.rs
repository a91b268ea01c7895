//! The shipped Grafana dashboard works on a default install: every PromQL expression of
//! every panel returns at least one series from a real Prometheus scraping `ecoplace serve
//! --demo` (the same service, in process) and the simulated fleet as Kepler v0.10 and v0.7
//! exporters — with the demo's own carbon source (the embedded curves), so the carbon panels need no
//! operator-provided intensity metric. Before any traffic the counters already read 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kepler_client::{KeplerSchema, SimulatedFleet};
use scheduler::config::Config;
use scheduler::runtime::{self, Service};
use serde_json::Value;
use tests::kepler::serve_fleet;
use tests::prometheus::{PrometheusServer, ScrapeJob};

const NAMES: &str = include_str!("../../scheduler/tests/fixtures/args-names.json");

/// Every `expr` of the dashboard's panels (rows included), with its panel's title.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("?").to_string(),
                    e.to_string(),
                ));
            }
        }
    }
    out
}

/// `expr` with the dashboard's variables at their defaults (and Grafana's `$__range`).
fn substitute(expr: &str, dashboard: &Value) -> String {
    let mut e = expr.replace("$__range", "5m");
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let value = match v["current"]["value"].as_str() {
            Some("$__all") => v["allValue"].as_str().unwrap_or(".*").to_string(),
            Some(x) => x.to_string(),
            None => continue, // the datasource
        };
        e = e
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    assert!(!e.contains('$'), "unsubstituted variable in {e}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_returns_series_on_a_demo_install() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/monitoring/ecoplace-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    let svc = Service::start(
        runtime::demo(Config::default()).unwrap(),
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, svc.router()).into_future());

    // Before any call: counters with known labels are there, at 0.
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ecoplace_fail_open_total{reason=\"carbon_missing\"} 0",
        "ecoplace_fail_open_total{reason=\"deadline\"} 0",
        "ecoplace_decisions_total{outcome=\"scored\",verb=\"prioritize\"} 0",
        "ecoplace_annotation_errors_total{annotation=\"ecoplace.io/user-region\"} 0",
        "ecoplace_events_total{result=\"written\"} 0",
        "ecoplace_extender_requests_total{code=\"400\",verb=\"filter\"} 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    // The grid intensity the demo decides with, and carbon rates per node.
    assert!(
        metrics.contains("ecoplace_grid_carbon_intensity_grams_per_kwh{zone=\"DE\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecoplace_carbon_rate_grams_per_hour{kind=\"node\""),
        "{metrics}"
    );

    let fleet = Arc::new(SimulatedFleet::embedded(42));
    let v010 = serve_fleet(fleet.clone(), KeplerSchema::V010)
        .await
        .unwrap();
    let v07 = serve_fleet(fleet.clone(), KeplerSchema::V07).await.unwrap();
    let prom = PrometheusServer::builder()
        .scrape_interval(Duration::from_secs(1))
        .job(ScrapeJob::new("ecoplace", [addr.to_string()]))
        .jobs(v010.jobs.clone())
        .jobs(v07.jobs.iter().cloned().map(|mut j| {
            j.name.push_str("-v07");
            j
        }))
        .start()
        .await
        .unwrap();

    // Traffic: filter and prioritize calls, one with a malformed annotation.
    let bad = NAMES.replace(
        "\"ecoplace.io/objective\":\"carbon\"",
        "\"ecoplace.io/objective\":\"greenest\"",
    );
    assert_ne!(bad, NAMES);
    for round in 0..6 {
        for verb in ["filter", "prioritize"] {
            let body = if round % 2 == 0 { NAMES } else { bad.as_str() };
            tests::extender::post(&client, &format!("http://{addr}"), verb, body)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    prom.wait_for_scrapes("ecoplace_decisions_total", 1)
        .await
        .unwrap();
    prom.wait_for_scrapes("kepler_node_package_joules_total", 1)
        .await
        .unwrap();

    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 12, "{exprs:?}");
    let mut empty = Vec::new();
    for (title, expr) in &exprs {
        let q = substitute(expr, &dashboard);
        let series = prom
            .query(&q)
            .await
            .unwrap_or_else(|e| panic!("{title}: {q}: {e}"));
        if series.is_empty() {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data on a demo install:\n{}\n{}",
        empty.join("\n"),
        prom.targets_summary().await
    );
}
