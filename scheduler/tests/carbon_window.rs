//! The carbon-window controller against an in-process fake apiserver speaking the upstream
//! JSON: gated pods are planned from the zones' forecasts, the hold is recorded on the pod
//! (annotations, an `EcoplaceHeld` Event), and the gate is removed by a JSON patch when the
//! window starts; malformed annotations, a near deadline and missing forecasts release at
//! once (a Warning Event says why); a restart keeps the holds; a pod deleted while held
//! frees its slot; a replica that does not lead writes nothing but counts overdue pods.
//!
//! Time runs 3 600 times faster than the wall clock (a second is an hour), so a 3-hour
//! hold takes 3 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use fake_apiserver::{Fake, container, start};
use kepler_client::carbon::{CarbonCurves, CarbonIntensitySource, IntensityPoint};
use kepler_client::refresher::Clock;
use prometheus::Registry;
use scheduler::carbon_window::controller::{Controller, HELD, RELEASED, WindowSettings};
use scheduler::carbon_window::hold::HoldSettings;
use scheduler::carbon_window::metrics::WindowMetrics;
use scheduler::config::Config;
use scheduler::extender::events::{EventOptions, KubeEvents};
use scheduler::extender::metrics::EventMetrics;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// Simulated seconds per wall-clock second.
const SPEED: f64 = 3600.0;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap()
}

/// A clock that starts at `t0() + offset_h` now and runs [`SPEED`] times faster.
#[derive(Clone)]
struct Fast {
    began: Instant,
    at_begin: DateTime<Utc>,
}

impl Fast {
    fn new(offset_h: f64) -> Self {
        Self {
            began: Instant::now(),
            at_begin: t0() + chrono::Duration::milliseconds((offset_h * 3_600_000.0) as i64),
        }
    }

    fn at(&self, i: Instant) -> DateTime<Utc> {
        let real = i.saturating_duration_since(self.began).as_secs_f64();
        self.at_begin + chrono::Duration::milliseconds((real * SPEED * 1000.0) as i64)
    }

    fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.at(Instant::now()))
    }
}

fn hours(h: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds((h * 3_600_000.0) as i64)
}

/// Hourly curves from t0 for 24 h: DE dirty but for hours 3–4, FR flat and dirtier.
fn curves() -> Arc<dyn CarbonIntensitySource> {
    let de = [
        420.0, 410.0, 390.0, 110.0, 120.0, 380.0, 400.0, 410.0, 420.0, 430.0, 420.0, 410.0,
    ];
    let point = |h: usize, g: f64| IntensityPoint {
        start: t0() + chrono::Duration::hours(h as i64),
        duration_s: 3600,
        g_per_kwh: g,
    };
    let de =
        CarbonCurves::from_points("DE", de.iter().enumerate().map(|(h, g)| point(h, *g))).unwrap();
    let fr = CarbonCurves::from_points("FR", (0..12).map(|h| point(h, 450.0))).unwrap();
    Arc::new(de.merge(fr))
}

fn settings(zones: &[&str], cores_per_slot: f64) -> Arc<WindowSettings> {
    let mut config = Config::default();
    config.carbon_window.zones = zones.iter().map(|z| z.to_string()).collect();
    config.carbon_window.cores_per_slot = cores_per_slot;
    let mut s = WindowSettings::of(&config);
    s.check = Duration::from_millis(20);
    s.hold = HoldSettings {
        default_duration: chrono::Duration::hours(1),
        ..s.hold
    };
    Arc::new(s)
}

/// A pending pod in namespace `batch` created at t0, with `gates` and `annotations`.
fn gated(name: &str, gates: &[&str], annotations: Value, cpu: &str) -> Value {
    let gates: Vec<Value> = gates.iter().map(|g| json!({"name": g})).collect();
    json!({
        "metadata": {"name": name, "namespace": "batch", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-12-04T00:00:00Z", "annotations": annotations,
            "labels": {"job-name": "nightly-report"}},
        "spec": {"schedulingGates": gates, "containers": [container("report", json!({"cpu": cpu}))]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}]},
    })
}

/// A running controller: stop it with `stop`, its metrics in `registry`.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    registry: Registry,
    leading: watch::Sender<bool>,
}

async fn run(fake: &Fake, settings: Arc<WindowSettings>, clock: Clock, leading: bool) -> Running {
    let client = kube::Client::try_from(fake.kube_config()).unwrap();
    let registry = Registry::new();
    let events = KubeEvents::spawn(
        client.clone(),
        EventOptions {
            min_interval: Duration::from_secs(300),
            max_per_second: 100.0,
            queue: 64,
            instance: "ecoplace-0".into(),
        },
        EventMetrics::register(&registry).unwrap(),
    );
    let controller = Controller {
        client,
        carbon: curves(),
        settings,
        clock,
        events: Arc::new(events),
        metrics: WindowMetrics::register(&registry).unwrap(),
    };
    let (lead_tx, lead_rx) = watch::channel(leading);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller.run_until(lead_rx, async move {
        let _ = stopped.await;
    }));
    Running {
        stop,
        task,
        registry,
        leading: lead_tx,
    }
}

impl Running {
    async fn stop(self) -> Registry {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap();
        self.registry
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.registry, name)
    }
}

/// The value of the series `name` (with its labels, e.g. `x{reason="window"}`).
fn metric(registry: &Registry, name: &str) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(f64::NAN, |v| v.parse().unwrap())
}

fn gates_of(fake: &Fake, name: &str) -> Vec<String> {
    fake.data().pods[name]["spec"]["schedulingGates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to `secs` wall seconds) until `done` holds.
async fn until(secs: f64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The JSON patches (gate removals) the fake received for `pod`, with when.
fn removals(fake: &Fake, pod: &str) -> Vec<(Value, Instant)> {
    fake.data()
        .patches
        .iter()
        .filter(|p| p.pod == pod && p.kind == "json")
        .map(|p| (p.body.clone(), p.at))
        .collect()
}

/// The Event notes written for `pod` with `reason`, with their type.
fn events(fake: &Fake, pod: &str, reason: &str) -> Vec<(String, String)> {
    fake.data()
        .events
        .iter()
        .filter(|(_, _, e)| e["regarding"]["name"] == pod && e["reason"] == reason)
        .map(|(_, _, e)| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_gated_pod_is_released_in_the_clean_window_and_bad_ones_at_once() {
    let (fake, _gate, _client) = start(true).await;
    // Another controller's gate first: ecoplace removes only its own, at index 1.
    fake.change(
        "pods",
        "Pod",
        gated(
            "report",
            &["example.com/quota", "ecoplace.io/carbon-window"],
            json!({"ecoplace.io/max-delay": "8h", "ecoplace.io/expected-duration": "1h"}),
            "2",
        ),
        false,
    );
    fake.change(
        "pods",
        "Pod",
        gated(
            "typo",
            &["ecoplace.io/carbon-window"],
            json!({"ecoplace.io/deadline": "tonight"}),
            "1",
        ),
        false,
    );
    fake.change(
        "pods",
        "Pod",
        gated(
            "urgent",
            &["ecoplace.io/carbon-window"],
            json!({"ecoplace.io/deadline": "2026-12-04T00:30:00Z", "ecoplace.io/expected-duration": "1h"}),
            "1",
        ),
        false,
    );
    // Not gated by ecoplace: never touched.
    fake.change(
        "pods",
        "Pod",
        gated("other", &["example.com/quota"], json!({}), "1"),
        false,
    );
    let fast = Fast::new(0.0);
    let running = run(&fake, settings(&["DE", "FR"], 64.0), fast.clock(), true).await;

    until(2.0, "typo and urgent released", || {
        gates_of(&fake, "typo").is_empty() && gates_of(&fake, "urgent").is_empty()
    })
    .await;
    for pod in ["typo", "urgent"] {
        let (_, at) = removals(&fake, pod)[0].clone();
        assert!(
            fast.at(at) < hours(0.5),
            "{pod} released at {}",
            fast.at(at)
        );
    }
    // The hold is recorded on the pod and announced.
    let annotations = fake.data().pods["report"]["metadata"]["annotations"].clone();
    assert_eq!(
        annotations["ecoplace.io/release-at"],
        "2026-12-04T03:00:00Z"
    );
    assert_eq!(annotations["ecoplace.io/window-zone"], "DE");
    assert_eq!(
        annotations["ecoplace.io/max-delay"], "8h",
        "the user's annotations stay"
    );
    let held = events(&fake, "report", HELD);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].0, "Normal");
    assert!(
        held[0]
            .1
            .starts_with("held until 2026-12-04 03:00 UTC: forecast 110 g/kWh vs 4"),
        "{}",
        held[0].1
    );
    assert_eq!(gates_of(&fake, "report").len(), 2, "still held");

    until(6.0, "report released", || {
        gates_of(&fake, "report") == ["example.com/quota"]
    })
    .await;
    let removed = removals(&fake, "report");
    assert_eq!(removed.len(), 1);
    let (body, at) = &removed[0];
    assert_eq!(
        body,
        &json!([
            {"op": "test", "path": "/metadata/uid", "value": "uid-report"},
            {"op": "test", "path": "/spec/schedulingGates/1/name", "value": "ecoplace.io/carbon-window"},
            {"op": "remove", "path": "/spec/schedulingGates/1"},
        ])
    );
    let when = fast.at(*at);
    assert!(
        when >= hours(3.0) && when < hours(3.25),
        "released at {when}"
    );
    until(2.0, "the released events", || {
        events(&fake, "report", RELEASED).len() == 1
    })
    .await;
    let released = events(&fake, "report", RELEASED);
    assert!(
        released[0].1.contains("for its carbon window in DE: ≈"),
        "{}",
        released[0].1
    );
    let typo = events(&fake, "typo", RELEASED);
    assert_eq!(typo[0].0, "Warning");
    assert!(
        typo[0]
            .1
            .contains("annotation ecoplace.io/deadline=\"tonight\": not an RFC 3339 time"),
        "{}",
        typo[0].1
    );
    assert!(
        events(&fake, "urgent", RELEASED)[0]
            .1
            .contains("leaves no room to wait")
    );
    assert!(removals(&fake, "other").is_empty());
    assert!(gates_of(&fake, "other") == ["example.com/quota"]);

    until(1.0, "the held gauge at 0", || {
        running.metric("ecoplace_carbon_window_pods_held") == 0.0
    })
    .await;
    for (reason, n) in [
        ("window", 1.0),
        ("malformed", 1.0),
        ("deadline_near", 1.0),
        ("no_forecast", 0.0),
    ] {
        let name = format!("ecoplace_carbon_window_released_total{{reason=\"{reason}\"}}");
        assert_eq!(running.metric(&name), n, "{name}");
    }
    // 2 cores × 8 W for an hour: (DE now ≈ 4xx − 110 g/kWh) × 0.016 kWh.
    let saved = running.metric("ecoplace_carbon_window_estimated_saved_grams_total");
    assert!(saved > 4.0 && saved < 6.0, "{saved}");
    assert_eq!(running.metric("ecoplace_carbon_window_pods_overdue"), 0.0);
    assert_eq!(running.metric("ecoplace_carbon_window_leader"), 1.0);
    running.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_recorded_hold_and_plans_new_pods() {
    let (fake, _gate, _client) = start(true).await;
    let annotations = json!({"ecoplace.io/max-delay": "8h", "ecoplace.io/expected-duration": "1h"});
    fake.change(
        "pods",
        "Pod",
        gated(
            "first",
            &["ecoplace.io/carbon-window"],
            annotations.clone(),
            "1",
        ),
        false,
    );
    let fast = Fast::new(0.0);
    let one = run(&fake, settings(&["DE"], 64.0), fast.clock(), true).await;
    until(2.0, "the hold recorded", || {
        fake.data().pods["first"]["metadata"]["annotations"]["ecoplace.io/release-at"]
            == "2026-12-04T03:00:00Z"
    })
    .await;
    one.stop().await;
    // While no controller runs, another pod arrives.
    fake.change(
        "pods",
        "Pod",
        gated("second", &["ecoplace.io/carbon-window"], annotations, "1"),
        false,
    );
    let merges_before = fake
        .data()
        .patches
        .iter()
        .filter(|p| p.pod == "first" && p.kind == "merge")
        .count();
    let two = run(&fake, settings(&["DE"], 64.0), fast.clock(), true).await;
    until(6.0, "both released", || {
        gates_of(&fake, "first").is_empty() && gates_of(&fake, "second").is_empty()
    })
    .await;
    for pod in ["first", "second"] {
        let (_, at) = removals(&fake, pod)[0].clone();
        let when = fast.at(at);
        assert!(
            when >= hours(3.0) && when < hours(3.25),
            "{pod} released at {when}"
        );
    }
    let merges_after = fake
        .data()
        .patches
        .iter()
        .filter(|p| p.pod == "first" && p.kind == "merge")
        .count();
    assert_eq!(
        merges_before, merges_after,
        "the restarted controller kept the recorded hold"
    );
    assert_eq!(events(&fake, "first", HELD).len(), 1, "announced once");
    assert_eq!(events(&fake, "second", HELD).len(), 1);
    two.stop().await;
}

#[tokio::test]
async fn without_a_forecast_pods_are_released_at_once_with_a_warning() {
    let (fake, _gate, _client) = start(true).await;
    fake.change(
        "pods",
        "Pod",
        gated(
            "report",
            &["ecoplace.io/carbon-window"],
            json!({"ecoplace.io/max-delay": "8h"}),
            "1",
        ),
        false,
    );
    let fast = Fast::new(0.0);
    // A zone the carbon source does not know.
    let running = run(&fake, settings(&["PL"], 64.0), fast.clock(), true).await;
    until(2.0, "report released", || {
        gates_of(&fake, "report").is_empty()
    })
    .await;
    assert!(fast.at(removals(&fake, "report")[0].1) < hours(0.5));
    until(2.0, "the event", || {
        !events(&fake, "report", RELEASED).is_empty()
    })
    .await;
    let e = &events(&fake, "report", RELEASED)[0];
    assert_eq!(e.0, "Warning");
    assert!(
        e.1.starts_with("released now: no carbon forecast (PL: "),
        "{}",
        e.1
    );
    assert!(
        e.1.contains("never delays a pod for its own missing data"),
        "{}",
        e.1
    );
    assert_eq!(
        running.metric("ecoplace_carbon_window_released_total{reason=\"no_forecast\"}"),
        1.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_pod_deleted_while_held_frees_its_slot_and_is_never_patched() {
    let (fake, _gate, _client) = start(true).await;
    let annotations = json!({"ecoplace.io/max-delay": "8h", "ecoplace.io/expected-duration": "1h"});
    fake.change(
        "pods",
        "Pod",
        gated(
            "gone",
            &["ecoplace.io/carbon-window"],
            annotations.clone(),
            "2",
        ),
        false,
    );
    let fast = Fast::new(0.0);
    // Room for one 2-core pod per slot and zone.
    let running = run(&fake, settings(&["DE"], 2.0), fast.clock(), true).await;
    until(2.0, "gone held", || !events(&fake, "gone", HELD).is_empty()).await;
    let pod = fake.data().pods["gone"].clone();
    fake.change("pods", "Pod", pod, true);
    until(1.0, "the held gauge at 0", || {
        running.metric("ecoplace_carbon_window_pods_held") == 0.0
    })
    .await;
    // The freed 03:00 slot goes to the next pod (it would get 04:00 otherwise).
    fake.change(
        "pods",
        "Pod",
        gated("next", &["ecoplace.io/carbon-window"], annotations, "2"),
        false,
    );
    until(2.0, "next held", || !events(&fake, "next", HELD).is_empty()).await;
    assert_eq!(
        fake.data().pods["next"]["metadata"]["annotations"]["ecoplace.io/release-at"],
        "2026-12-04T03:00:00Z"
    );
    until(6.0, "next released", || gates_of(&fake, "next").is_empty()).await;
    assert!(removals(&fake, "gone").is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_standby_replica_writes_nothing_but_counts_overdue_pods() {
    let (fake, _gate, _client) = start(true).await;
    // Created at t0 with a 1-hour deadline; the clock starts at 02:00: overdue.
    fake.change(
        "pods",
        "Pod",
        gated(
            "late",
            &["ecoplace.io/carbon-window"],
            json!({"ecoplace.io/max-delay": "1h"}),
            "1",
        ),
        false,
    );
    let fast = Fast::new(2.0);
    let running = run(&fake, settings(&["DE"], 64.0), fast.clock(), false).await;
    until(2.0, "the overdue gauge", || {
        running.metric("ecoplace_carbon_window_pods_overdue") == 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        fake.data().patches.is_empty(),
        "a standby replica patches nothing"
    );
    assert_eq!(running.metric("ecoplace_carbon_window_leader"), 0.0);
    running.leading.send_replace(true);
    until(2.0, "late released", || gates_of(&fake, "late").is_empty()).await;
    until(1.0, "the overdue gauge at 0", || {
        running.metric("ecoplace_carbon_window_pods_overdue") == 0.0
    })
    .await;
    assert_eq!(
        running.metric("ecoplace_carbon_window_released_total{reason=\"deadline_near\"}"),
        1.0
    );
    running.stop().await;
}

/// The pods the Job controller creates from `examples/carbon-window-job.yaml`: its pod
/// template (annotations, gate, requests) with the Job's labels and owner.
fn job_pods() -> Vec<Value> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("examples/carbon-window-job.yaml")).unwrap();
    let job: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(job["kind"], "Job");
    let template = &job["spec"]["template"];
    let n = job["spec"]["parallelism"].as_u64().unwrap();
    (0..n)
        .map(|i| {
            let name = format!("nightly-report-{i}x7k2");
            let mut metadata = template["metadata"].clone();
            metadata["name"] = json!(name);
            metadata["namespace"] = json!("default");
            metadata["uid"] = json!(format!("uid-{name}"));
            metadata["creationTimestamp"] = json!("2026-12-04T00:00:00Z");
            metadata["labels"] = json!({"job-name": "nightly-report", "batch.kubernetes.io/job-name": "nightly-report"});
            metadata["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-report",
                "uid": "uid-job", "controller": true, "blockOwnerDeletion": true}]);
            json!({"metadata": metadata, "spec": template["spec"].clone(),
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}})
        })
        .collect()
}

#[tokio::test]
async fn the_example_jobs_pods_are_released_together_in_the_clean_window() {
    let (fake, _gate, _client) = start(true).await;
    let pods = job_pods();
    assert_eq!(pods.len(), 4);
    for p in &pods {
        fake.change("pods", "Pod", p.clone(), false);
    }
    let fast = Fast::new(0.0);
    // Room for all four 2-core pods in one slot.
    let running = run(&fake, settings(&["DE", "FR"], 8.0), fast.clock(), true).await;
    let names: Vec<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    until(8.0, "every pod of the Job released", || {
        names.iter().all(|n| gates_of(&fake, n).is_empty())
    })
    .await;
    // max-delay 12h, 90-minute runs: the cleanest 90 minutes start at 03:00 (110, 120).
    for n in &names {
        let (_, at) = removals(&fake, n)[0].clone();
        let when = fast.at(at);
        assert!(
            when >= hours(3.0) && when < hours(3.25),
            "{n} released at {when}"
        );
        assert_eq!(
            fake.data().pods[n]["metadata"]["annotations"]["ecoplace.io/release-at"],
            "2026-12-04T03:00:00Z"
        );
    }
    assert_eq!(
        running.metric("ecoplace_carbon_window_released_total{reason=\"window\"}"),
        4.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_deadline_beyond_the_forecast_uses_the_part_it_covers() {
    let (fake, _gate, _client) = start(true).await;
    // The curves end at 12:00; the deadline is two days out.
    fake.change(
        "pods",
        "Pod",
        gated(
            "weekly",
            &["ecoplace.io/carbon-window"],
            json!({"ecoplace.io/max-delay": "48h", "ecoplace.io/expected-duration": "1h"}),
            "1",
        ),
        false,
    );
    let fast = Fast::new(0.0);
    let running = run(&fake, settings(&["DE"], 64.0), fast.clock(), true).await;
    until(2.0, "weekly held", || {
        !events(&fake, "weekly", HELD).is_empty()
    })
    .await;
    assert_eq!(
        fake.data().pods["weekly"]["metadata"]["annotations"]["ecoplace.io/release-at"],
        "2026-12-04T03:00:00Z"
    );
    running.stop().await;
}
