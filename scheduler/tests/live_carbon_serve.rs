//! `ecoplace serve --config` itself (the binary) with a live Electricity Maps source: a
//! loopback fake in the provider's shapes, the node watch against the in-process fake
//! apiserver. The zone's intensity reaches `/metrics` and `/readyz`; the provider answering
//! 500 for longer than `maxAgeSeconds` makes the zone unknown — `/readyz` names it, the
//! extender fails open — and it recovers by itself; the token never reaches the logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/src/carbon_apis.rs"]
#[allow(dead_code)] // the WattTime and carbon-aware-sdk fakes are exercised in `tests`
mod carbon_apis;
mod fake_apiserver;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carbon_apis::{Api, FakeCarbonApi, Mode};
use fake_apiserver::node;
use serde_json::json;

const TOKEN: &str = "em-token-serve-SECRET-51c2";
const NAMES: &str = include_str!("fixtures/args-names.json");

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `url` until its body satisfies `ok`, failing with the last body and the log.
async fn until(
    client: &reqwest::Client,
    url: &str,
    secs: u64,
    log: &std::path::Path,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, body) = get(client, url).await;
        if ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: last answer:\n{body}\nlog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_config_with_electricity_maps_fails_open_on_an_outage_and_recovers() {
    let (apiserver, _gate, _) = fake_apiserver::start(true).await;
    apiserver.change(
        "nodes",
        "Node",
        node("node-a", json!({"cpu": "8", "memory": "32Gi"})),
        false,
    );
    let fake = FakeCarbonApi::start(Api::ElectricityMaps, &[("FR", 35.0)], "", TOKEN)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("auth-token");
    std::fs::write(&token, TOKEN).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n\
             current-context: c\n",
            apiserver.url
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("ecoplace.yaml");
    std::fs::write(
        &config,
        format!(
            "extender:\n  listen: 127.0.0.1:{port}\n\
             telemetry:\n  prometheus:\n    url: http://127.0.0.1:1\n    timeoutSeconds: 1\n    retries: 0\n\
             topology:\n  carbonZones: {{fr: FR}}\n\
             events:\n  enabled: false\n\
             carbon:\n  electricityMaps:\n    zones: {{FR: FR}}\n    url: {}\n    tokenFile: {}\n\
             \x20   refresh: {{latestSeconds: 0.3, forecastSeconds: 0.5, maxAgeSeconds: 2, timeoutSeconds: 1}}\n",
            fake.url,
            token.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_ecoplace"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("KUBECONFIG", &kubeconfig)
            .env("ECOPLACE_LOG", "debug")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    // The zone's intensity now, as the provider gives it (the fake's 35 + 5 × UTC hour).
    let ready = until(&client, &format!("{base}/readyz"), 60, &log, |b| {
        b.contains("carbon: ok (1 zones)")
    })
    .await;
    let metrics = until(&client, &format!("{base}/metrics"), 10, &log, |b| {
        b.contains("ecoplace_carbon_source_intensity_grams_per_kwh{")
    })
    .await;
    let now = chrono::Utc::now();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ecoplace_carbon_source_intensity_grams_per_kwh{"))
        .unwrap();
    assert!(
        line.contains("provider_zone=\"FR\"")
            && line.contains("signal=\"lifecycle\"")
            && line.contains("source=\"electricitymaps\""),
        "{line}"
    );
    let g: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (g - fake.truth("FR", now)).abs() < 1e-9
            || (g - fake.truth("FR", now - chrono::Duration::minutes(1))).abs() < 1e-9,
        "{line}"
    );
    assert!(
        metrics.contains(&format!(
            "ecoplace_grid_carbon_intensity_grams_per_kwh{{zone=\"FR\"}} {g}"
        )),
        "{metrics}"
    );

    // The provider fails for longer than maxAgeSeconds: FR is unknown, named, fail open.
    fake.set_mode(Mode::Status(500));
    let stale = until(&client, &format!("{base}/readyz"), 20, &log, |b| {
        b.contains("zone `FR`") && b.contains("stale")
    })
    .await;
    assert!(stale.contains("carbon: no intensity for FR"), "{stale}");
    let filter = client
        .post(format!("{base}/scheduler/filter"))
        .header("content-type", "application/json")
        .body(NAMES)
        .send()
        .await
        .unwrap();
    assert_eq!(filter.status(), 200);
    let filter: serde_json::Value = filter.json().await.unwrap();
    assert_eq!(filter["FailedNodes"], json!({}), "{filter}");
    let (_, metrics) = get(&client, &format!("{base}/metrics")).await;
    assert!(metrics.contains("ecoplace_carbon_source_refresh_errors_total{kind=\"server\",source=\"electricitymaps\"}"), "{metrics}");

    // Back: recovered without a restart.
    fake.set_mode(Mode::Ok);
    until(&client, &format!("{base}/readyz"), 20, &log, |b| {
        b.contains("carbon: ok (1 zones)")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("carbon refresh failed") && text.contains("carbon refresh recovered"),
        "{text}"
    );
    for shown in [&text, &metrics, &ready, &stale] {
        assert!(!shown.contains(TOKEN), "the token leaked:\n{shown}");
    }
}
