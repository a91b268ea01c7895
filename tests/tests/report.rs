//! `ecoplace report` against a real Prometheus holding backfilled Kepler history and the
//! extender's avoided-carbon counter: totals equal the hand-computed integrals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::Parser;
use kepler_client::KeplerSchema;
use kepler_client::carbon::CarbonCurves;
use kepler_client::simulated::{SimZone, SimulatedFleet, history_openmetrics};
use scheduler::commands::report::{self, ReportArgs};
use scheduler::report::sustainability::AVOIDED_METRIC;
use serde_json::Value;
use tests::kepler::expected_per_cluster;
use tests::prometheus::PrometheusServer;

/// `ecoplace report`'s arguments, parsed as the binary parses them.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: ReportArgs,
}

fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs().max(1e-9)
}

/// The avoided-carbon counter rising linearly from 0 to `grams` over `[from, to]`.
fn avoided_counter(from: DateTime<Utc>, to: DateTime<Utc>, grams: f64) -> String {
    let metric = AVOIDED_METRIC.trim_end_matches("_total");
    let mut out = format!("# TYPE {metric} counter\n");
    let span = (to - from).num_seconds() as f64;
    let mut t = from;
    while t <= to {
        let v = grams * (t - from).num_seconds() as f64 / span;
        let _ = writeln!(
            out,
            "{AVOIDED_METRIC}{{job=\"ecoplace\"}} {v} {}",
            t.timestamp()
        );
        t += Duration::seconds(60);
    }
    out + "# EOF\n"
}

/// The fleet's Kepler v0.10 package-zone history, one sample a minute, labelled `cluster`.
fn package_history(fleet: &SimulatedFleet, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    history_openmetrics(
        fleet,
        KeplerSchema::V010,
        "cluster",
        &[SimZone::Package],
        from,
        to,
        60,
    )
}

/// Runs `ecoplace report` over `[from, to]` with the three clusters' zones (unless `extra`
/// gives its own `--cluster-zone`) and `extra`, in `format`; returns the file written.
async fn render(
    url: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    extra: &[&str],
    format: &str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("report.{format}"));
    let out = path.to_string_lossy().to_string();
    let (f, t) = (from.to_rfc3339(), to.to_rfc3339());
    let mut argv = vec!["report", "--prometheus", url, "--from", &f, "--to", &t];
    // The backfill holds counters only, no power gauges, so the schema is given:
    // detection probes `kepler_node_cpu_watts`.
    argv.extend(["--schema", "v0.10", "--format", format, "-o", &out]);
    if !extra.contains(&"--cluster-zone") {
        argv.extend(["--cluster-zone", "de=DE", "--cluster-zone", "fr=FR"]);
        argv.extend(["--cluster-zone", "gb=GB"]);
    }
    argv.extend(extra);
    report::run(Cli::parse_from(argv).args).await.unwrap();
    std::fs::read_to_string(&path).unwrap()
}

/// The JSON report, after checking that the HTML one draws its charts without `NaN`.
async fn run(url: &str, from: DateTime<Utc>, to: DateTime<Utc>, extra: &[&str]) -> Value {
    let page = render(url, from, to, extra, "html").await;
    assert_eq!(page.matches("<svg").count(), 2, "power and carbon charts");
    assert!(!page.contains("NaN"));
    // To look at a report: ECOPLACE_KEEP_REPORT=DIR keeps the first HTML written (the
    // whole day by namespace) as DIR/report.html.
    if let Ok(keep) = std::env::var("ECOPLACE_KEEP_REPORT") {
        let kept = std::path::Path::new(&keep).join("report.html");
        if !kept.exists() {
            std::fs::write(kept, &page).unwrap();
        }
    }
    serde_json::from_str(&render(url, from, to, extra, "json").await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_totals_equal_the_integrals_of_backfilled_history() {
    let fleet = SimulatedFleet::embedded(7);
    let curves = CarbonCurves::embedded_2020().unwrap();
    let from = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
    let to = from + Duration::hours(24);
    let half = from + Duration::hours(12);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(package_history(&fleet, from, to))
        .backfill_openmetrics(avoided_counter(half, to, 480.0))
        .start()
        .await
        .unwrap();
    let nodes = expected_per_cluster(&fleet, &curves, from, to, false).unwrap();
    let pods = expected_per_cluster(&fleet, &curves, from, to, true).unwrap();
    let kwh: f64 = nodes.values().map(|v| v.0).sum();
    let grams: f64 = nodes.values().map(|v| v.1).sum();

    let r = run(
        &prom.url(),
        from,
        to,
        &["--group-by", "namespace", "--top", "100"],
    )
    .await;
    let got_kwh = r["total_kwh"].as_f64().unwrap();
    let got_kg = r["total_kg_co2e"].as_f64().unwrap();
    let got_g_per_kwh = r["mean_g_per_kwh"].as_f64().unwrap();
    eprintln!(
        "report: {got_kwh:.4} kWh (exact {kwh:.4}), {got_kg:.4} kgCO2e (exact {:.4}), {got_g_per_kwh:.2} g/kWh (exact {:.2})",
        grams / 1000.0,
        grams / kwh
    );
    assert!(within(got_kwh, kwh, 0.01), "{got_kwh} vs {kwh} kWh");
    assert!(
        within(got_kg, grams / 1000.0, 0.01),
        "{got_kg} vs {grams} g"
    );
    assert!(within(got_g_per_kwh, grams / kwh, 0.01));
    for c in r["clusters"].as_array().unwrap() {
        let name = c["cluster"].as_str().unwrap();
        let (k, g) = nodes[name];
        assert!(within(c["kwh"].as_f64().unwrap(), k, 0.01), "{name}");
        assert!(
            within(c["kg_co2e"].as_f64().unwrap(), g / 1000.0, 0.01),
            "{name}"
        );
    }
    // Namespaces: pod energy (no idle), adding up to the pods' own integral.
    let ns_kwh: f64 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kwh"].as_f64().unwrap())
        .sum();
    let pods_kwh: f64 = pods.values().map(|v| v.0).sum();
    assert!(within(ns_kwh, pods_kwh, 0.01), "{ns_kwh} vs {pods_kwh}");
    let top = r["top_namespaces"].as_array().unwrap();
    assert_eq!(top.len(), r["groups"].as_array().unwrap().len());
    let top_kwh: Vec<f64> = top.iter().map(|g| g["kwh"].as_f64().unwrap()).collect();
    assert!(top_kwh.windows(2).all(|w| w[0] >= w[1]), "{top_kwh:?}");
    let avoided = r["carbon_avoided_kg"].as_f64().unwrap();
    eprintln!("carbon avoided: {avoided:.4} kg (counter rose by 0.480 kg)");
    assert!(within(avoided, 0.48, 0.01), "{avoided}");
    assert_eq!(r["series"].as_array().unwrap().len(), 3);
    assert!(r["gaps"].as_array().unwrap().is_empty(), "{}", r["gaps"]);

    // PUE scales energy and carbon.
    let p = run(&prom.url(), from, to, &["--pue", "1.5"]).await;
    assert!(within(p["total_kwh"].as_f64().unwrap(), 1.5 * kwh, 0.01));
    assert!(within(
        p["total_kg_co2e"].as_f64().unwrap(),
        1.5 * grams / 1000.0,
        0.01
    ));

    // CSV: one row per node, adding up to the fleet's energy.
    let csv = render(&prom.url(), from, to, &["--group-by", "node"], "csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "cluster,group,energy_kwh,carbon_kgco2e,g_per_kwh");
    assert_eq!(lines.len(), 1 + fleet.nodes.len());
    let csv_kwh: f64 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(within(csv_kwh, kwh, 0.01), "{csv_kwh} vs {kwh}");

    // A cluster without a zone: its carbon is unknown (`-`), the total covers the others
    // and says so.
    let only_de = ["--cluster-zone", "de=DE"];
    let partial = run(&prom.url(), from, to, &only_de).await;
    let de_kg = nodes["de"].1 / 1000.0;
    assert!(within(
        partial["total_kg_co2e"].as_f64().unwrap(),
        de_kg,
        0.01
    ));
    assert!(within(
        partial["carbon_covered_kwh"].as_f64().unwrap(),
        nodes["de"].0,
        0.01
    ));
    let md = render(&prom.url(), from, to, &only_de, "md").await;
    assert!(md.contains("some clusters have no known intensity"), "{md}");
    let fr_row = md.lines().find(|l| l.starts_with("| fr | ")).unwrap();
    assert!(fr_row.ends_with("| - | - |"), "{fr_row}");
    assert!(md.contains("`fr` has no carbon zone"), "{md}");

    // Before the counter existed, avoided carbon is unknown and said so, never 0.
    let early = run(&prom.url(), from, from + Duration::hours(6), &[]).await;
    assert!(early["carbon_avoided_kg"].is_null());
    assert!(
        early["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g.as_str().unwrap().contains(AVOIDED_METRIC)),
        "{}",
        early["gaps"]
    );
}

/// `ecoplace report` over `[from, to]` as JSON to /dev/null with `extra`; its error as text.
async fn report_error(url: &str, from: &str, to: &str, extra: &[&str]) -> Option<String> {
    let mut argv = vec!["report", "--prometheus", url, "--from", from, "--to", to];
    argv.extend(extra);
    argv.extend(["--format", "json", "-o", "/dev/null"]);
    let err = report::run(Cli::parse_from(argv).args).await.err()?;
    let msg = format!("{err:#}");
    eprintln!("{msg}");
    Some(msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_without_data_is_an_error_naming_the_range() {
    let fleet = SimulatedFleet::embedded(7);
    let from = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
    let to = from + Duration::hours(6);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(package_history(&fleet, from, to))
        .start()
        .await
        .unwrap();
    // A month after the history ends.
    let (f, t) = (from + Duration::days(30), from + Duration::days(31));
    let url = prom.url();
    let (fs, ts) = (f.to_rfc3339(), t.to_rfc3339());
    let v010 = ["--schema", "v0.10"];
    assert_eq!(
        report_error(&url, &fs, &ts, &v010).await,
        Some(format!(
            "Kepler metric `kepler_node_cpu_joules_total` (schema v0.10) has no samples from {fs} to {ts} at {url}: is the period inside the store's history (retention)?"
        ))
    );
    // Without --schema the schema is detected at --to, where there is no data either.
    let msg = report_error(&url, &fs, &ts, &[]).await.unwrap();
    assert!(
        msg.starts_with(&format!(
            "reading node energy from {fs} to {ts}: no Kepler metrics found at {url}"
        )),
        "{msg}"
    );
    // The range with data still reports.
    let (fs, ts) = (from.to_rfc3339(), to.to_rfc3339());
    assert_eq!(report_error(&url, &fs, &ts, &v010).await, None);
}

/// With `--carbon-config` naming a live Electricity Maps source (a loopback fake), the
/// report reads the provider's history for its period, hour by hour, in one `past-range`
/// call per zone — never the latest value — and its carbon equals the integral of energy
/// times that history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_a_live_providers_history_for_its_period() {
    use chrono::DurationRound as _;
    use tests::carbon_apis::{Api, FakeCarbonApi};
    let fleet = SimulatedFleet::embedded(7);
    let from = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(4);
    let to = from + Duration::hours(24);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(package_history(&fleet, from, to))
        .start()
        .await
        .unwrap();
    let zones = [("DE", 410.0), ("FR", 45.0), ("GB", 230.0)];
    let fake = FakeCarbonApi::start(Api::ElectricityMaps, &zones, "", "em-report-token")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "em-report-token").unwrap();
    let config = dir.path().join("ecoplace.yaml");
    std::fs::write(
        &config,
        format!(
            "carbon:\n  electricityMaps:\n    zones: {{DE: DE, FR: FR, GB: GB}}\n    url: {}\n    tokenFile: {}\n",
            fake.url,
            token.display()
        ),
    )
    .unwrap();
    // The provider's history as curves: what the report must have used.
    let mut curves = CarbonCurves::new();
    for (zone, _) in zones {
        let points = (0..24).map(|h| {
            let start = from + Duration::hours(h);
            kepler_client::carbon::IntensityPoint {
                start,
                duration_s: 3600,
                g_per_kwh: fake.truth(zone, start).round(),
            }
        });
        curves = curves.merge(CarbonCurves::from_points(zone, points).unwrap());
    }
    let nodes = expected_per_cluster(&fleet, &curves, from, to, false).unwrap();
    let grams: f64 = nodes.values().map(|v| v.1).sum();
    let path = config.to_string_lossy().to_string();
    let r = run(&prom.url(), from, to, &["--carbon-config", &path]).await;
    let got_kg = r["total_kg_co2e"].as_f64().unwrap();
    eprintln!(
        "report with Electricity Maps history: {got_kg:.4} kgCO2e (exact {:.4})",
        grams / 1000.0
    );
    assert!(
        within(got_kg, grams / 1000.0, 0.01),
        "{got_kg} vs {grams} g"
    );
    for c in r["clusters"].as_array().unwrap() {
        let name = c["cluster"].as_str().unwrap();
        assert!(
            within(c["kg_co2e"].as_f64().unwrap(), nodes[name].1 / 1000.0, 0.01),
            "{name}"
        );
    }
    assert!(
        r.to_string()
            .contains("electricitymaps (lifecycle intensity)"),
        "{r}"
    );
    // One 24-hour past-range call per zone and report rendering; never the latest value.
    assert_eq!(fake.count("/latest"), 0);
    assert_eq!(fake.count("/forecast"), 0);
    assert_eq!(fake.count("/past-range"), 2 * 3, "html and json renders");
    for c in fake.calls() {
        assert_eq!(
            c.query["start"],
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
}
