//! Self-tests of the `tests::prometheus` harness against the real Prometheus 2.42.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use tests::prometheus::{PrometheusServer, ScrapeJob, serve_text};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn scrapes_exporter_with_target_labels() -> Result<()> {
    let t0 = Instant::now();
    let (addr, _exporter) = serve_text(|| {
        "# HELP test_gauge A test gauge.\n# TYPE test_gauge gauge\ntest_gauge{a=\"b\"} 42\n"
            .to_string()
    })
    .await?;
    let prom = PrometheusServer::builder()
        .scrape_interval(Duration::from_secs(1))
        .lookback_delta(Duration::from_secs(30))
        .job(ScrapeJob::new("exporter", [addr.to_string()]).label("cluster", "x"))
        .start()
        .await?;
    assert!(prom.url().starts_with("http://127.0.0.1:"));
    assert_ne!(prom.port(), 9090);
    eprintln!("prometheus ready after {:?}", t0.elapsed());

    prom.wait_for_series("test_gauge", 1, WAIT).await?;
    eprintln!("first scrape visible after {:?}", t0.elapsed());

    let samples = prom.query(r#"test_gauge{a="b"}"#).await?;
    ensure!(samples.len() == 1, "expected one series, got {samples:?}");
    let s = &samples[0];
    assert_eq!(s.value, 42.0);
    assert_eq!(s.labels.get("cluster").map(String::as_str), Some("x"));
    assert_eq!(s.labels.get("a").map(String::as_str), Some("b"));
    assert_eq!(s.labels.get("job").map(String::as_str), Some("exporter"));
    assert_eq!(
        s.labels.get("instance").map(String::as_str),
        Some(addr.to_string().as_str())
    );
    Ok(())
}

/// 3 h of a counter growing 10 per minute, 60 s apart, ending ~2 h ago.
fn counter_history(end: DateTime<Utc>) -> String {
    let start = end - TimeDelta::hours(3);
    let mut text = String::from(
        "# HELP backfill_energy_joules Test counter.\n# TYPE backfill_energy_joules counter\n",
    );
    let mut t = start;
    let mut v = 0u64;
    while t <= end {
        let _ = writeln!(
            text,
            "backfill_energy_joules_total{{node=\"n1\"}} {v} {}",
            t.timestamp()
        );
        v += 10;
        t += TimeDelta::seconds(60);
    }
    text.push_str("# EOF\n");
    text
}

#[tokio::test]
async fn backfilled_history_is_queryable() -> Result<()> {
    let t0 = Instant::now();
    let end = Utc::now().duration_trunc(TimeDelta::minutes(1))? - TimeDelta::hours(2);
    let start = end - TimeDelta::hours(3);
    let prom = PrometheusServer::builder()
        .backfill_openmetrics(counter_history(end))
        .start()
        .await?;
    eprintln!("backfill + prometheus ready after {:?}", t0.elapsed());

    // 10 per minute => 600 per hour; evaluated on and off the sample grid.
    for at in [end - TimeDelta::minutes(30), end - TimeDelta::seconds(1830)] {
        let samples = prom
            .query_at("increase(backfill_energy_joules_total[1h])", at)
            .await?;
        ensure!(
            samples.len() == 1,
            "expected one series at {at}, got {samples:?}"
        );
        let v = samples[0].value;
        ensure!((v - 600.0).abs() < 1e-6, "increase at {at} = {v}, want 600");
        assert_eq!(
            samples[0].labels.get("node").map(String::as_str),
            Some("n1")
        );
    }

    // The whole 3 h: 180 steps of 10.
    let total = prom
        .query_at("backfill_energy_joules_total", end)
        .await?
        .first()
        .map(|s| s.value)
        .context("no sample at the end of the history")?;
    assert_eq!(total, 1800.0);

    let series = prom
        .query_range(
            "increase(backfill_energy_joules_total[1h])",
            start + TimeDelta::hours(1),
            end,
            Duration::from_secs(15 * 60),
        )
        .await?;
    ensure!(series.len() == 1, "expected one series, got {series:?}");
    assert_eq!(series[0].values.len(), 9);
    for (t, v) in &series[0].values {
        ensure!((v - 600.0).abs() < 1e-6, "increase at {t} = {v}, want 600");
    }
    // Nothing after the history (beyond the 5 min lookback).
    let later = prom
        .query_at("backfill_energy_joules_total", end + TimeDelta::minutes(10))
        .await?;
    ensure!(later.is_empty(), "unexpected samples: {later:?}");
    Ok(())
}

#[tokio::test]
async fn restart_keeps_port_and_data() -> Result<()> {
    let (addr, _exporter) = serve_text(|| "up_gauge 1\n".to_string()).await?;
    let end = Utc::now().duration_trunc(TimeDelta::minutes(1))? - TimeDelta::hours(2);
    let mut prom = PrometheusServer::builder()
        .job(ScrapeJob::new("exporter", [addr.to_string()]))
        .backfill_openmetrics(counter_history(end))
        .start()
        .await?;
    prom.wait_for_series("up_gauge", 1, WAIT).await?;
    let port = prom.port();

    prom.stop()?;
    assert!(!prom.is_running());
    assert!(prom.query("up_gauge").await.is_err());

    let t0 = Instant::now();
    prom.restart().await?;
    eprintln!("restart ready after {:?}", t0.elapsed());
    assert_eq!(prom.port(), port);
    assert!(prom.is_running());
    // Scraped data survived the SIGKILL via the WAL, backfilled blocks too.
    assert_eq!(prom.query("up_gauge").await?.len(), 1);
    assert_eq!(
        prom.query_at("backfill_energy_joules_total", end)
            .await?
            .len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn bad_backfill_input_is_reported() -> Result<()> {
    let Err(err) = PrometheusServer::builder()
        .backfill_openmetrics("x 1 1700000000\n")
        .start()
        .await
    else {
        anyhow::bail!("missing # EOF was accepted");
    };
    assert!(format!("{err:#}").contains("# EOF"), "{err:#}");

    let Err(err) = PrometheusServer::builder()
        .backfill_openmetrics("x 1 1700000000000\n# EOF\n")
        .start()
        .await
    else {
        anyhow::bail!("millisecond timestamps were accepted");
    };
    assert!(format!("{err:#}").contains("milliseconds"), "{err:#}");

    let future = Utc::now().timestamp() + 600;
    let Err(err) = PrometheusServer::builder()
        .backfill_openmetrics(format!("x 1 {future}\n# EOF\n"))
        .start()
        .await
    else {
        anyhow::bail!("future timestamps were accepted");
    };
    assert!(format!("{err:#}").contains("out of bounds"), "{err:#}");

    // Passes the harness' own checks, promtool's parser rejects it: its output is quoted.
    let Err(err) = PrometheusServer::builder()
        .backfill_openmetrics("x{a=b} 1 1700000000\n# EOF\n")
        .start()
        .await
    else {
        anyhow::bail!("an unquoted label value was accepted");
    };
    let msg = format!("{err:#}");
    assert!(
        msg.contains("promtool tsdb create-blocks-from openmetrics"),
        "{msg}"
    );
    eprintln!("promtool failure reads: {msg}");
    Ok(())
}

#[tokio::test]
async fn exporter_stops_when_guard_dropped() -> Result<()> {
    let (addr, guard) = serve_text(|| "g 1\n".to_string()).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let resp = client.get(format!("http://{addr}/metrics")).send().await?;
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(resp.text().await?, "g 1\n");
    drop(guard);
    // Stop accepting promptly (the accept loop exits as soon as the signal arrives).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::builder().no_proxy().build()?;
        if fresh
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .is_err()
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "exporter still serving after drop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
