//! Live carbon sources against loopback fakes of Electricity Maps, WattTime and the
//! carbon-aware-sdk WebAPI answering in their documented shapes: values, units, time zones
//! and zone mappings; every failure a provider can answer with; background refresh,
//! `Retry-After`, staleness and recovery; and the whole path config → source → extender
//! decision, `/readyz` and `/metrics`, with the provider failing for longer than the limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use kepler_client::carbon::live::{
    CarbonAwareSdkConfig, ElectricityMapsConfig, Fetch, LiveCarbon, WattTimeConfig,
};
use kepler_client::carbon::{CarbonError, CarbonIntensitySource};
use kepler_client::refresher::Clock;
use scheduler::config::Config;
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};
use tests::carbon_apis::{Api, FakeCarbonApi, Mode, truth};

const NAMES: &str = include_str!("../../scheduler/tests/fixtures/args-names.json");
const EM_TOKEN: &str = "em-token-do-not-leak-1f0c";
const WT_USER: &str = "ecoplace-user";
const WT_PASSWORD: &str = "wt-password-do-not-leak-9a2b";
const SDK_TOKEN: &str = "sdk-bearer-do-not-leak-77e1";

fn clock() -> Clock {
    Arc::new(Utc::now)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn em_config(url: &str, token_file: &str, zones: Value, extra: Value) -> ElectricityMapsConfig {
    let mut v = json!({"zones": zones, "url": url, "tokenFile": token_file});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

/// Asserts no secret appears in `text`.
fn no_secret(what: &str, text: &str) {
    for s in [EM_TOKEN, WT_PASSWORD, SDK_TOKEN, "wt-session-"] {
        assert!(!text.contains(s), "{what} shows a secret ({s}): {text}");
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// The truth the fake answers for the hour holding `t`, as ecoplace must read it.
fn expected(fake: &FakeCarbonApi, zone: &str, t: DateTime<Utc>) -> f64 {
    fake.truth(zone, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electricity_maps_latest_forecast_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", &format!("{EM_TOKEN}\n"));
    let fake = FakeCarbonApi::start(
        Api::ElectricityMaps,
        &[("DE", 300.0), ("FR", 40.0)],
        "",
        EM_TOKEN,
    )
    .await
    .unwrap();
    let cfg = em_config(
        &fake.url,
        &token,
        json!({"germany": "DE", "france": "FR"}),
        json!({"emissionFactorType": "direct"}),
    );
    let live = cfg.build(clock()).unwrap();
    assert_eq!(live.signal(), "direct");
    assert_eq!(
        live.describe(),
        "electricitymaps (direct intensity) for france=FR, germany=DE"
    );
    live.refresh_all().await;

    // Direct factors (the fake scales them by 0.8), on the hour the provider stamps.
    let now = Utc::now();
    let g = live.intensity_at("germany", now).await.unwrap();
    assert!(close(g, (expected(&fake, "DE", now) * 0.8).round()), "{g}");
    let later = now.duration_trunc(chrono::Duration::hours(1)).unwrap()
        + chrono::Duration::minutes(5 * 60 + 10);
    let f = live
        .forecast("france", later, later + chrono::Duration::minutes(30))
        .await
        .unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(close(
        f[0].g_per_kwh,
        (expected(&fake, "FR", later) * 0.8).round()
    ));
    for c in fake.calls() {
        assert_eq!(c.auth.as_deref(), Some(EM_TOKEN), "{c:?}");
        assert_eq!(c.query["emissionFactorType"], "direct");
        assert!(["DE", "FR"].contains(&c.query["zone"].as_str()), "{c:?}");
    }
    let status = live.status();
    assert_eq!(status.len(), 2);
    for z in &status {
        assert!(!z.stale, "{z:?}");
        assert!(z.horizon_s.unwrap() > 22.0 * 3600.0, "{z:?}");
        assert!(z.age_s.unwrap() < 5.0, "{z:?}");
        assert!(z.last_error.is_none(), "{z:?}");
    }
    // Beyond the forecast there is nothing: an error, not a zero.
    let beyond = now + chrono::Duration::hours(30);
    assert!(matches!(
        live.intensity_at("germany", beyond).await,
        Err(CarbonError::OutOfCoverage { .. })
    ));

    // History for a report: 14 days in calls of at most 10 days, hour by hour.
    let from = now - chrono::Duration::days(15);
    let to = now - chrono::Duration::days(1);
    live.load_history(from, to).await.unwrap();
    assert_eq!(fake.count("/past-range"), 4, "two calls per zone");
    for days in [14, 9, 2] {
        let t = now - chrono::Duration::days(days) + chrono::Duration::minutes(7);
        let g = live.intensity_at("germany", t).await.unwrap();
        assert!(
            close(g, (expected(&fake, "DE", t) * 0.8).round()),
            "{days} d ago: {g}"
        );
    }
    no_secret("Debug", &format!("{live:?} {cfg:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electricity_maps_failures_are_named_counted_and_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", EM_TOKEN);
    let fake = FakeCarbonApi::start(Api::ElectricityMaps, &[("DE", 300.0)], "", EM_TOKEN)
        .await
        .unwrap();
    let cfg = em_config(
        &fake.url,
        &token,
        json!({"DE": "DE", "XX": "NOT-A-ZONE"}),
        json!({"refresh": {"timeoutSeconds": 0.5}}),
    );
    let live = cfg.build(clock()).unwrap();
    let mut messages = Vec::new();
    let mut check = |e: kepler_client::carbon::live::FetchError, kind: &str, says: &str| {
        assert_eq!(e.kind(), kind, "{e}");
        let text = e.to_string();
        assert!(text.contains(says), "{kind}: {text}");
        no_secret(kind, &format!("{text} {e:?}"));
        messages.push(text);
    };

    let e = live.refresh("XX", Fetch::Latest).await.unwrap_err();
    check(e, "unknown_zone", "NOT-A-ZONE");
    for (mode, kind, says) in [
        (Mode::Status(500), "server", "HTTP 500"),
        (Mode::Status(503), "server", "HTTP 503"),
        (Mode::RateLimited(7), "rate_limited", "retry after 7 s"),
        (
            Mode::Slow(Duration::from_secs(2)),
            "timeout",
            "no answer within 0.5 s",
        ),
        (Mode::Malformed, "malformed", "malformed answer"),
        (Mode::Empty, "empty", "no data for zone `DE`"),
    ] {
        fake.set_mode(mode.clone());
        let e = live.refresh("DE", Fetch::Forecast).await.unwrap_err();
        if let kepler_client::carbon::live::FetchError::RateLimited { retry_after, .. } = &e {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        check(e, kind, says);
    }
    // A rotated (here: wrong) token is read again on the next call; the right one works
    // again without a restart.
    fake.set_mode(Mode::Ok);
    std::fs::write(dir.path().join("token"), "a-wrong-token").unwrap();
    let e = live.refresh("DE", Fetch::Latest).await.unwrap_err();
    check(e, "unauthorized", "HTTP 401");
    std::fs::write(dir.path().join("token"), EM_TOKEN).unwrap();
    live.refresh("DE", Fetch::Latest).await.unwrap();
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let e = live.refresh("DE", Fetch::Latest).await.unwrap_err();
    check(e, "credentials", "cannot read auth-token file");

    let counts = live.error_counts();
    for kind in [
        "unknown_zone",
        "rate_limited",
        "timeout",
        "malformed",
        "empty",
        "unauthorized",
        "credentials",
    ] {
        assert_eq!(counts.get(kind), Some(&1), "{kind}: {counts:?}");
    }
    assert_eq!(counts.get("server"), Some(&2), "{counts:?}");
    // The zone that never answered is unknown — an error naming it, never a zero.
    let e = live.intensity_at("XX", Utc::now()).await.unwrap_err();
    assert!(matches!(e, CarbonError::Stale { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("zone `XX`") && text.contains("never refreshed"),
        "{text}"
    );
    assert!(text.contains("NOT-A-ZONE"), "says why: {text}");
    no_secret("stale error", &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watttime_converts_lbs_per_mwh_and_renews_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let user = write(dir.path(), "username", WT_USER);
    let password = write(dir.path(), "password", WT_PASSWORD);
    let fake = FakeCarbonApi::start(
        Api::WattTime,
        &[("CAISO_NORTH", 250.0)],
        WT_USER,
        WT_PASSWORD,
    )
    .await
    .unwrap();
    let cfg: WattTimeConfig = serde_json::from_value(json!({
        "zones": {"us-west": "CAISO_NORTH"},
        "url": fake.url,
        "loginUrl": format!("{}/login", fake.url),
        "usernameFile": user,
        "passwordFile": password,
        "horizonHours": 12,
    }))
    .unwrap();
    let live = cfg.build(clock()).unwrap();
    assert_eq!(live.signal(), "marginal");
    assert!(
        live.describe().contains("(marginal intensity)"),
        "{}",
        live.describe()
    );
    live.refresh_all().await;
    assert_eq!(fake.logins(), 1, "one login for both calls");

    // The fake answers lbs CO2/MWh; ecoplace holds gCO2e/kWh (× 0.45359237).
    let now = Utc::now();
    let g = live.intensity_at("us-west", now).await.unwrap();
    assert!(close(g, expected(&fake, "CAISO_NORTH", now)), "{g} g/kWh");
    let t = now + chrono::Duration::hours(6);
    let g = live.intensity_at("us-west", t).await.unwrap();
    assert!(
        close(g, expected(&fake, "CAISO_NORTH", t)),
        "{g} g/kWh at +6 h"
    );
    let horizon = live.status()[0].horizon_s.unwrap();
    assert!(
        (11.5 * 3600.0..=12.1 * 3600.0).contains(&horizon),
        "{horizon}"
    );
    for c in fake.calls().iter().filter(|c| c.path.starts_with("/v3/")) {
        assert_eq!(c.query["signal_type"], "co2_moer");
        assert_eq!(c.query["region"], "CAISO_NORTH");
        assert_eq!(c.auth.as_deref(), Some("Bearer wt-session-1"));
    }

    // Tokens expire: a 401 makes it log in again once and retry.
    fake.expire_tokens();
    live.refresh("us-west", Fetch::Forecast).await.unwrap();
    assert_eq!(fake.logins(), 2);

    // History for a report, 40 days in calls of at most 32.
    live.load_history(
        now - chrono::Duration::days(41),
        now - chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.count("/v3/historical"),
        1 + 2,
        "latest once, history twice"
    );
    let t = now - chrono::Duration::days(33);
    assert!(close(
        live.intensity_at("us-west", t).await.unwrap(),
        expected(&fake, "CAISO_NORTH", t)
    ));

    // Refused credentials: named, without the password.
    std::fs::write(dir.path().join("password"), "wrong").unwrap();
    fake.expire_tokens();
    let e = live.refresh("us-west", Fetch::Latest).await.unwrap_err();
    assert_eq!(e.kind(), "unauthorized", "{e}");
    assert!(e.to_string().contains("/login"), "{e}");
    no_secret("login error", &format!("{e} {e:?} {live:?} {cfg:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbon_aware_sdk_reads_forecasts_and_emissions_in_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", SDK_TOKEN);
    let fake = FakeCarbonApi::start(Api::CarbonAwareSdk, &[("westeurope", 180.0)], "", SDK_TOKEN)
        .await
        .unwrap();
    let cfg: CarbonAwareSdkConfig = serde_json::from_value(json!({
        "zones": {"eu-west": "westeurope", "nowhere": "atlantis"},
        "url": fake.url,
        "tokenFile": token,
    }))
    .unwrap();
    let live = cfg.build(clock()).unwrap();
    assert_eq!(live.signal(), "average");
    live.refresh_all().await;
    // The WebAPI renders +02:00 offsets; the values belong to the UTC hours they name.
    let now = Utc::now();
    for h in [0, 3, 17] {
        let t = now + chrono::Duration::hours(h);
        let g = live.intensity_at("eu-west", t).await.unwrap();
        assert!(close(g, expected(&fake, "westeurope", t)), "+{h} h: {g}");
    }
    let past = now - chrono::Duration::days(3);
    live.load_history(past, past + chrono::Duration::hours(6))
        .await
        .unwrap_err();
    // `nowhere` maps to a location the WebAPI does not know: the history call says so.
    let status: BTreeMap<String, _> = live
        .status()
        .into_iter()
        .map(|z| (z.zone.clone(), z))
        .collect();
    let nowhere = &status["nowhere"];
    assert!(
        nowhere.stale && nowhere.now_g_per_kwh.is_none(),
        "{nowhere:?}"
    );
    assert!(
        nowhere
            .last_error
            .as_deref()
            .unwrap()
            .contains("Unknown location: 'atlantis'"),
        "{nowhere:?}"
    );
    for c in fake.calls() {
        assert_eq!(
            c.auth.as_deref(),
            Some(format!("Bearer {SDK_TOKEN}").as_str())
        );
    }
    let one: CarbonAwareSdkConfig = serde_json::from_value(json!({
        "zones": {"eu-west": "westeurope"},
        "url": fake.url,
        "tokenFile": dir.path().join("token"),
    }))
    .unwrap();
    let live = one.build(clock()).unwrap();
    live.load_history(past, past + chrono::Duration::hours(6))
        .await
        .unwrap();
    let t = past + chrono::Duration::hours(2);
    assert!(close(
        live.intensity_at("eu-west", t).await.unwrap(),
        expected(&fake, "westeurope", t)
    ));
    fake.set_mode(Mode::Empty);
    let e = live.refresh("eu-west", Fetch::Forecast).await.unwrap_err();
    assert_eq!(e.kind(), "empty", "{e}");
}

/// Waits up to `within` for `f` to hold.
async fn eventually(within: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_honours_retry_after_goes_stale_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", EM_TOKEN);
    let fake = FakeCarbonApi::start(Api::ElectricityMaps, &[("DE", 300.0)], "", EM_TOKEN)
        .await
        .unwrap();
    let cfg = em_config(
        &fake.url,
        &token,
        json!({"DE": "DE"}),
        json!({"refresh": {"latestSeconds": 0.2, "forecastSeconds": 0.3, "maxAgeSeconds": 1.5, "timeoutSeconds": 1}}),
    );
    let live: LiveCarbon = cfg.build(clock()).unwrap();
    let task = live.start().await;
    let fresh_at = Utc::now();
    let before = fake.calls().len();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        fake.calls().len() >= before + 3,
        "refreshes on its own: {}",
        fake.calls().len() - before
    );

    // 429 with Retry-After: 2 — nobody calls again for 2 s.
    fake.set_mode(Mode::RateLimited(2));
    eventually(Duration::from_secs(3), "a 429", async || {
        fake.calls().len() > before && live.error_counts().contains_key("rate_limited")
    })
    .await;
    let limited_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.at > limited_at)
        .collect();
    assert!(
        after.is_empty(),
        "called {} times within Retry-After",
        after.len()
    );

    // 500s for longer than maxAgeSeconds: now is unknown (an error naming the zone), the
    // past stays usable.
    fake.set_mode(Mode::Status(500));
    eventually(Duration::from_secs(6), "stale with the 500", async || {
        let z = &live.status()[0];
        z.stale
            && z.last_error
                .as_deref()
                .is_some_and(|e| e.contains("HTTP 500"))
    })
    .await;
    let e = live.intensity_at("DE", Utc::now()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, CarbonError::Stale { .. }) && text.contains("zone `DE`"),
        "{text}"
    );
    assert!(text.contains("HTTP 500"), "{text}");
    let past = fresh_at - chrono::Duration::seconds(1);
    live.intensity_at("DE", past).await.unwrap();

    // Recovery without a restart.
    fake.set_mode(Mode::Ok);
    eventually(Duration::from_secs(8), "recovery", async || {
        live.intensity_at("DE", Utc::now()).await.is_ok() && live.status()[0].last_error.is_none()
    })
    .await;
    assert!(!live.status()[0].stale);
    drop(task);
}

/// A `serve` configuration with `carbon` as given, telemetry from the demo fleet.
fn serve_config(carbon: &str) -> Config {
    let yaml = format!(
        "telemetry:\n  prometheus:\n    url: http://127.0.0.1:9\n  refreshSeconds: 1\n  staleAfterSeconds: 60\ncarbon:\n{carbon}"
    );
    Config::parse(&yaml, "live-carbon.yaml").unwrap()
}

async fn text(client: &reqwest::Client, url: String) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The demo extender (its node facts, telemetry, power profiles) with `config`'s carbon
/// source built as `serve --config` builds it, on the wall clock.
async fn extender(config: Config) -> (Service, String) {
    let mut parts = runtime::demo(config).unwrap();
    let source =
        kepler_client::PrometheusSource::new(parts.config.telemetry.prometheus.clone().unwrap())
            .unwrap();
    parts.carbon = runtime::carbon(&parts.config, Some(&source)).unwrap();
    parts.clock = Arc::new(Utc::now);
    let svc = Service::start(parts, Duration::from_millis(200))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, svc.router()).into_future());
    (svc, base)
}

fn score(v: &Value, node: &str) -> i64 {
    v.as_array()
        .unwrap()
        .iter()
        .find(|e| e["Host"] == node)
        .unwrap()["Score"]
        .as_i64()
        .unwrap()
}

/// The full path for one provider: values reach the view (through the zone mapping, in
/// g/kWh, for the right hour), the clean zone wins, `/metrics` shows the source; then the
/// provider answers 500 for longer than the limit: the extender fails open, `/readyz`
/// names the zone, and it recovers by itself.
async fn full_path(fake: &FakeCarbonApi, carbon: &str, provider_zone: [&str; 3]) {
    let (svc, base) = extender(serve_config(carbon)).await;
    let client = reqwest::Client::new();
    let view = svc.extender.view();
    assert!(
        view.inputs.carbon_missing.is_empty(),
        "{:?}",
        view.inputs.carbon_missing
    );
    let at = view.inputs.built_at;
    for (zone, theirs) in ["DE", "FR", "GB"].into_iter().zip(provider_zone) {
        let seen = view.inputs.carbon[zone].now_g_per_kwh;
        assert!(
            close(seen, fake.truth(theirs, at)),
            "{zone} ({theirs}): {seen} vs {}",
            fake.truth(theirs, at)
        );
    }
    let prio = tests::extender::post(&client, &base, "prioritize", NAMES)
        .await
        .unwrap();
    assert!(
        score(&prio, "fr-arm-eff-1") > score(&prio, "de-old-x86-0"),
        "{prio}"
    );
    let (_, metrics) = text(&client, format!("{base}/metrics")).await;
    assert!(
        metrics.contains("ecoplace_carbon_source_intensity_grams_per_kwh{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecoplace_carbon_source_stale{"),
        "{metrics}"
    );
    no_secret("/metrics", &metrics);

    fake.set_mode(Mode::Status(500));
    let started = Instant::now();
    let ready = loop {
        let (status, ready) = text(&client, format!("{base}/readyz")).await;
        if ready.contains("stale") {
            assert_eq!(
                status, 200,
                "missing carbon fails open, stays ready: {ready}"
            );
            break ready;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never went stale: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ready.contains("carbon: no intensity for") && ready.contains("zone `FR`"),
        "{ready}"
    );
    assert!(ready.contains("HTTP 500"), "{ready}");
    no_secret("/readyz", &ready);
    let view = svc.extender.view();
    assert!(
        view.inputs.carbon_missing.contains_key("FR"),
        "{:?}",
        view.inputs.carbon_missing
    );
    let filter = tests::extender::post(&client, &base, "filter", NAMES)
        .await
        .unwrap();
    assert_eq!(
        filter["FailedNodes"],
        json!({}),
        "missing carbon turns nothing down"
    );
    assert_eq!(filter["NodeNames"].as_array().map(Vec::len), Some(5));
    let (_, metrics) = text(&client, format!("{base}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ecoplace_carbon_source_stale{")
                && l.contains("zone=\"FR\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("ecoplace_carbon_source_refresh_errors_total{")
                && l.contains("kind=\"server\"")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    no_secret("/metrics", &metrics);

    fake.set_mode(Mode::Ok);
    let started = Instant::now();
    loop {
        let (_, ready) = text(&client, format!("{base}/readyz")).await;
        if ready.contains("carbon: ok (3 zones)") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never recovered: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const FAST: &str = "    refresh: {latestSeconds: 0.3, forecastSeconds: 0.5, maxAgeSeconds: 2, timeoutSeconds: 1}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electricity_maps_through_the_extender() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", EM_TOKEN);
    let fake = FakeCarbonApi::start(
        Api::ElectricityMaps,
        &[("DE", 420.0), ("FR", 30.0), ("GB", 260.0)],
        "",
        EM_TOKEN,
    )
    .await
    .unwrap();
    let carbon = format!(
        "  electricityMaps:\n    zones: {{DE: DE, FR: FR, GB: GB}}\n    url: {}\n    tokenFile: {token}\n{FAST}",
        fake.url
    );
    full_path(&fake, &carbon, ["DE", "FR", "GB"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watttime_through_the_extender() {
    let dir = tempfile::tempdir().unwrap();
    let user = write(dir.path(), "username", WT_USER);
    let password = write(dir.path(), "password", WT_PASSWORD);
    // Regions named unlike the ecoplace zones: a lost mapping is an unknown region.
    let fake = FakeCarbonApi::start(
        Api::WattTime,
        &[("DE_GRID", 600.0), ("FR_GRID", 35.0), ("UK_GRID", 300.0)],
        WT_USER,
        WT_PASSWORD,
    )
    .await
    .unwrap();
    let carbon = format!(
        "  wattTime:\n    zones: {{DE: DE_GRID, FR: FR_GRID, GB: UK_GRID}}\n    url: {url}\n    loginUrl: {url}/login\n    usernameFile: {user}\n    passwordFile: {password}\n{FAST}",
        url = fake.url
    );
    full_path(&fake, &carbon, ["DE_GRID", "FR_GRID", "UK_GRID"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbon_aware_sdk_through_the_extender() {
    let fake = FakeCarbonApi::start(
        Api::CarbonAwareSdk,
        &[
            ("germanywestcentral", 410.0),
            ("francecentral", 25.0),
            ("uksouth", 240.0),
        ],
        "",
        "",
    )
    .await
    .unwrap();
    let carbon = format!(
        "  carbonAwareSdk:\n    zones: {{DE: germanywestcentral, FR: francecentral, GB: uksouth}}\n    url: {}\n{FAST}",
        fake.url
    );
    full_path(
        &fake,
        &carbon,
        ["germanywestcentral", "francecentral", "uksouth"],
    )
    .await;
}

#[test]
fn truth_depends_on_the_utc_hour() {
    let t: DateTime<Utc> = "2026-12-04T03:30:00Z".parse().unwrap();
    assert_eq!(truth(100.0, t), 115.0);
}
