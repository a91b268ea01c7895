//! kepler-client against a real Prometheus: live scrapes of both Kepler schemas,
//! backfilled history for energy and carbon accounting, and failure paths.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use kepler_client::accounting::{Accountant, EnergyRequest, GroupBy};
use kepler_client::carbon::CarbonCurves;
use kepler_client::prom::Endpoint;
use kepler_client::simulated::{SimZone, history_openmetrics};
use kepler_client::{
    KeplerSchema, PrometheusConfig, PrometheusSource, SimulatedFleet, TelemetryError,
    TelemetrySource,
};
use tests::kepler::{expected_per_cluster, serve_fleet, serve_fleet_zones};
use tests::prometheus::PrometheusServer;

fn config(url: String) -> PrometheusConfig {
    PrometheusConfig {
        endpoint: Endpoint {
            url,
            timeout_s: 2.0,
            retries: 1,
            backoff_ms: 50,
            ..Endpoint::default()
        },
        lookback_s: 30,
        rate_window_s: 10,
        stale_after_s: 15.0,
        ..PrometheusConfig::default()
    }
}

fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs().max(1e-9)
}

/// Scrapes the fleet in `schema` and checks the snapshot against the fleet's own figures.
async fn scraped_snapshot_matches_fleet(schema: KeplerSchema) {
    let fleet = Arc::new(SimulatedFleet::embedded(42));
    let exporters = serve_fleet(fleet.clone(), schema).await.unwrap();
    let prom = exporters.prometheus().await.unwrap();
    let probe = schema.probe_metric(&Default::default());
    prom.wait_for_scrapes(probe.as_str(), 1).await.unwrap();

    let source = PrometheusSource::new(config(prom.url())).unwrap();
    let now = Utc::now();
    let snap = source.snapshot(now).await.unwrap();
    assert_eq!(snap.schema, Some(schema));
    assert_eq!(snap.clusters.len(), 3, "{:?}", snap.clusters.keys());
    assert_eq!(snap.node_count(), fleet.nodes.len());
    assert_eq!(snap.pod_count(), fleet.pods.len());
    assert_eq!(snap.quality.dropped_nan + snap.quality.dropped_negative, 0);

    for (i, node) in fleet.nodes.iter().enumerate() {
        let cluster = &fleet.clusters[node.cluster].name;
        let got = snap.node(cluster, &node.name).unwrap();
        let sample = got.total_watts.sample().unwrap();
        assert!(got.total_watts.fresh().is_some(), "{} is stale", node.name);
        let truth = fleet.node_states(sample.at)[i];
        assert!(
            within(sample.value, truth.zone_watts(SimZone::Package), 0.01),
            "{}: {} W scraped vs {} W",
            node.name,
            sample.value,
            truth.package_watts
        );
        let idle = got.idle_watts.last_known().unwrap();
        assert!(
            within(idle, truth.package_idle_watts, 0.01),
            "{}: idle {idle}",
            node.name
        );
        let active = got.active_watts.last_known().unwrap();
        assert!(within(
            active,
            truth.zone_active_watts(SimZone::Package),
            0.01
        ));
        assert_eq!(
            got.gpu_watts.is_some(),
            truth.gpu_watts.is_some(),
            "{}",
            node.name
        );
        match schema {
            KeplerSchema::V010 => {
                let u = got.cpu_usage_ratio.fresh().unwrap();
                assert!(within(u, truth.usage_ratio, 0.01));
            }
            KeplerSchema::V07 => assert!(got.cpu_usage_ratio.is_missing()),
        }
    }
    for (i, pod) in fleet.pods.iter().enumerate() {
        let node = &fleet.nodes[pod.node];
        let c = &snap.clusters[&fleet.clusters[node.cluster].name];
        let got = c
            .pods
            .iter()
            .find(|p| p.pod == pod.name && p.namespace == pod.namespace)
            .unwrap();
        assert_eq!(got.node, node.name);
        let s = got.watts.sample().unwrap();
        let states = fleet.node_states(s.at);
        let truth = fleet.pod_active_watts(s.at, &states)[i];
        // Idle energy exported per container in v0.7 must not leak into pod power.
        assert!(
            within(s.value, truth, 0.01),
            "{}: {} vs {truth}",
            pod.name,
            s.value
        );
    }

    // Forcing the other schema names the metric it missed.
    let other = match schema {
        KeplerSchema::V010 => KeplerSchema::V07,
        KeplerSchema::V07 => KeplerSchema::V010,
    };
    let forced = PrometheusSource::new(PrometheusConfig {
        schema: Some(other),
        ..config(prom.url())
    })
    .unwrap();
    let err = forced.snapshot(now).await.unwrap_err();
    assert!(
        matches!(&err, TelemetryError::MissingMetric { metric, .. } if *metric == other.probe_metric(&Default::default())),
        "{err}"
    );
    assert!(err.to_string().contains(&other.to_string()), "{err}");
    drop(exporters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_kepler_v010_matches_the_fleet() {
    scraped_snapshot_matches_fleet(KeplerSchema::V010).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_kepler_v07_matches_the_fleet() {
    scraped_snapshot_matches_fleet(KeplerSchema::V07).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfilled_history_accounts_energy_and_carbon() {
    let fleet = SimulatedFleet::embedded(7);
    let curves = CarbonCurves::embedded_2020().unwrap();
    let from = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
    // 24 full hours plus a 30-minute remainder window.
    let to = from + chrono::Duration::minutes(24 * 60 + 30);
    let pkg = [SimZone::Package];
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(history_openmetrics(
            &fleet,
            KeplerSchema::V010,
            "cluster",
            &pkg,
            from,
            to,
            120,
        ))
        .backfill_openmetrics(history_openmetrics(
            &fleet,
            KeplerSchema::V07,
            "cluster",
            &pkg,
            from,
            to,
            120,
        ))
        .start()
        .await
        .unwrap();
    let zones: BTreeMap<String, String> = fleet
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.carbon_zone.clone()))
        .collect();
    let nodes_truth = expected_per_cluster(&fleet, &curves, from, to, false).unwrap();
    let pods_truth = expected_per_cluster(&fleet, &curves, from, to, true).unwrap();

    for schema in KeplerSchema::ALL {
        let source = PrometheusSource::new(PrometheusConfig {
            schema: Some(schema),
            ..config(prom.url())
        })
        .unwrap();
        let accountant = Accountant {
            source: &source,
            carbon: &curves,
            cluster_zones: &zones,
        };
        let request = |group_by| EnergyRequest {
            from,
            to,
            group_by,
            step_s: 3600,
            pue: 1.0,
        };
        let by_cluster = accountant.energy(&request(GroupBy::Cluster)).await.unwrap();
        assert!(by_cluster.gaps.is_empty(), "{:?}", by_cluster.gaps);
        assert_eq!(by_cluster.groups.len(), 3);
        for g in &by_cluster.groups {
            let (kwh, grams) = nodes_truth[&g.cluster];
            assert_eq!(g.windows.len(), 25, "24 hourly windows and the 30-min rest");
            assert!(
                within(g.kwh, kwh, 0.02),
                "{schema} {}: {} vs {kwh} kWh",
                g.cluster,
                g.kwh
            );
            let got = g.g_co2e.unwrap();
            eprintln!(
                "{schema} {}: {:.3} kWh (exact {kwh:.3}), {got:.1} g (exact {grams:.1})",
                g.cluster, g.kwh
            );
            assert!(
                within(got, grams, 0.02),
                "{schema} {}: {got} vs {grams} g",
                g.cluster
            );
        }
        // Pod energy excludes idle power and matches the pods' own integral.
        let by_ns = accountant
            .energy(&request(GroupBy::Namespace))
            .await
            .unwrap();
        assert!(!by_ns.includes_idle);
        for (cluster, (kwh, grams)) in &pods_truth {
            let sum: f64 = by_ns
                .groups
                .iter()
                .filter(|g| &g.cluster == cluster)
                .map(|g| g.kwh)
                .sum();
            let g: f64 = by_ns
                .groups
                .iter()
                .filter(|g| &g.cluster == cluster)
                .filter_map(|g| g.g_co2e)
                .sum();
            assert!(
                within(sum, *kwh, 0.02),
                "{schema} {cluster}: pods {sum} vs {kwh} kWh"
            );
            assert!(
                within(g, *grams, 0.02),
                "{schema} {cluster}: pods {g} vs {grams} g"
            );
            assert!(sum < nodes_truth[cluster].0);
        }
        // Hour-by-hour carbon differs from average energy x average intensity.
        let de = by_cluster
            .groups
            .iter()
            .find(|g| g.cluster == "de")
            .unwrap();
        let mean_i = curves.mean_over("DE", from, to).unwrap();
        assert!((de.g_co2e.unwrap() - de.kwh * mean_i).abs() > 1e-6);
    }
    // A cluster without a carbon zone is reported as a gap, never as zero grams.
    let source = PrometheusSource::new(config(prom.url())).unwrap();
    let partial = BTreeMap::from([("de".to_string(), "DE".to_string())]);
    let accountant = Accountant {
        source: &source,
        carbon: &curves,
        cluster_zones: &partial,
    };
    let r = accountant
        .energy(&EnergyRequest {
            from,
            to,
            group_by: GroupBy::Node,
            step_s: 3600,
            pue: 1.2,
        })
        .await
        .unwrap();
    assert!(
        r.gaps.iter().any(|g| g.contains("`fr` has no carbon zone")),
        "{:?}",
        r.gaps
    );
    assert!(
        r.groups
            .iter()
            .filter(|g| g.cluster == "fr")
            .all(|g| g.g_co2e.is_none())
    );
    let total_nodes: f64 = nodes_truth.values().map(|v| v.0).sum();
    assert!(within(r.total_kwh, 1.2 * total_nodes, 0.02), "PUE applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_store_names_every_metric_tried_and_a_dead_one_fails_fast() {
    let mut prom = PrometheusServer::builder().start().await.unwrap();
    let url = prom.url();
    let source = PrometheusSource::new(config(url.clone())).unwrap();
    let err = source.snapshot(Utc::now()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TelemetryError::NoKeplerMetrics { .. }),
        "{msg}"
    );
    for metric in [
        "kepler_node_cpu_watts",
        "kepler_node_package_joules_total",
        &url,
    ] {
        assert!(msg.contains(metric), "{msg}");
    }

    prom.stop().unwrap();
    let started = Instant::now();
    let err = source.snapshot(Utc::now()).await.unwrap_err();
    assert!(matches!(err, TelemetryError::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_times_out_within_the_configured_bound() {
    // Accepts connections and never answers, like an overloaded Thanos Query.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let mut cfg = config(format!("http://{addr}"));
    cfg.endpoint.timeout_s = 0.5;
    cfg.endpoint.retries = 1;
    let source = PrometheusSource::new(cfg).unwrap();
    let started = Instant::now();
    let err = source.snapshot(Utc::now()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, TelemetryError::Timeout { attempts: 2, .. }),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    hold.abort();
}

#[derive(clap::Parser)]
struct TelemetryCli {
    #[command(flatten)]
    args: scheduler::commands::telemetry::TelemetryArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_series_is_an_error_listing_the_zones_there_are() {
    use clap::Parser as _;
    // A fleet whose Kepler exports package and DRAM power only (no psys).
    let fleet = Arc::new(SimulatedFleet::embedded(42));
    let exporters = serve_fleet_zones(
        fleet,
        KeplerSchema::V010,
        &[SimZone::Package, SimZone::Dram],
    )
    .await
    .unwrap();
    let prom = exporters.prometheus().await.unwrap();
    prom.wait_for_scrapes("kepler_node_cpu_watts", 1)
        .await
        .unwrap();
    let url = prom.url();
    let source = PrometheusSource::new(PrometheusConfig {
        zone: kepler_client::schema::PowerZone("psys".into()),
        ..config(url.clone())
    })
    .unwrap();
    let err = source.snapshot(Utc::now()).await.unwrap_err();
    assert!(
        matches!(&err, TelemetryError::ZoneMissing { zone, available, .. }
            if zone == "psys" && *available == ["dram", "package"]),
        "{err}"
    );
    // `ecoplace telemetry --zone psys`: the whole message, as the CLI prints it.
    let cli = TelemetryCli::parse_from(["telemetry", "--prometheus", &url, "--zone", "psys"]);
    let err = scheduler::commands::telemetry::collect(&cli.args)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    eprintln!("{msg}");
    for part in [
        "`kepler_node_cpu_watts` has no series in zone `psys`",
        "its zones there: dram, package",
        "--zone",
        &url,
    ] {
        assert!(msg.contains(part), "`{part}` in: {msg}");
    }
    // The zone it has works.
    let cli = TelemetryCli::parse_from(["telemetry", "--prometheus", &url, "--zone", "dram"]);
    let view = scheduler::commands::telemetry::collect(&cli.args)
        .await
        .unwrap();
    assert_eq!(view.snapshot.zone, "dram");
    drop(exporters);
}

/// `ecoplace telemetry --carbon-config` with a live WattTime source (a loopback fake): the
/// clusters' intensity now is the provider's marginal signal in g/kWh, and the table says
/// which source and signal it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_shows_a_live_providers_intensity_now() {
    use clap::Parser as _;
    use tests::carbon_apis::{Api, FakeCarbonApi};
    let fake = FakeCarbonApi::start(
        Api::WattTime,
        &[("DE_GRID", 500.0), ("FR_GRID", 60.0), ("UK_GRID", 250.0)],
        "user",
        "wt-telemetry-password",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u"), "user").unwrap();
    std::fs::write(dir.path().join("p"), "wt-telemetry-password").unwrap();
    let config = dir.path().join("ecoplace.yaml");
    std::fs::write(
        &config,
        format!(
            "carbon:\n  wattTime:\n    zones: {{DE: DE_GRID, FR: FR_GRID, GB: UK_GRID}}\n    url: {url}\n    loginUrl: {url}/login\n    usernameFile: {u}\n    passwordFile: {p}\n",
            url = fake.url,
            u = dir.path().join("u").display(),
            p = dir.path().join("p").display(),
        ),
    )
    .unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let cli = TelemetryCli::parse_from([
        "telemetry",
        "--demo",
        "--at",
        &now,
        "--carbon-config",
        config.to_str().unwrap(),
    ]);
    let view = scheduler::commands::telemetry::collect(&cli.args)
        .await
        .unwrap();
    for (cluster, theirs) in [("de", "DE_GRID"), ("fr", "FR_GRID"), ("gb", "UK_GRID")] {
        let c = &view.carbon[cluster];
        let g = c
            .g_per_kwh
            .unwrap_or_else(|| panic!("{cluster}: {:?}", c.unknown_because));
        assert!(
            (g - fake.truth(theirs, view.now)).abs() < 1e-6,
            "{cluster}: {g}"
        );
    }
    let table = scheduler::commands::telemetry::render_table(&view, 3);
    assert!(
        table.contains(
            "carbon    watttime (marginal intensity) for DE=DE_GRID, FR=FR_GRID, GB=UK_GRID"
        ),
        "{table}"
    );
}
