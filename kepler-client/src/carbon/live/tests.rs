#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use chrono::TimeZone;

use super::*;

/// A provider answering what the test scripted.
struct Scripted {
    latest: Mutex<Result<Vec<IntensityPoint>, FetchError>>,
    forecast: Mutex<Result<Vec<IntensityPoint>, FetchError>>,
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn signal(&self) -> &str {
        "average"
    }
    fn max_history_span(&self) -> chrono::Duration {
        chrono::Duration::days(1)
    }
    async fn latest(&self, _: &str, _: DateTime<Utc>) -> Result<Vec<IntensityPoint>, FetchError> {
        self.latest.lock().unwrap().clone()
    }
    async fn forecast(&self, _: &str, _: DateTime<Utc>) -> Result<Vec<IntensityPoint>, FetchError> {
        self.forecast.lock().unwrap().clone()
    }
    async fn history(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        Ok(Vec::new())
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(minutes)
}

fn p(start_min: i64, minutes: i64, g: f64) -> IntensityPoint {
    IntensityPoint {
        start: at(start_min),
        duration_s: minutes * 60,
        g_per_kwh: g,
    }
}

fn server_error() -> FetchError {
    FetchError::Server {
        status: 500,
        url: "http://provider/v3".into(),
        message: "boom".into(),
    }
}

/// A source over `provider` for zone `Z`, on a clock the test moves.
fn source(
    latest: Result<Vec<IntensityPoint>, FetchError>,
    forecast: Result<Vec<IntensityPoint>, FetchError>,
) -> (LiveCarbon, Arc<Scripted>, Arc<Mutex<DateTime<Utc>>>) {
    let provider = Arc::new(Scripted {
        latest: Mutex::new(latest),
        forecast: Mutex::new(forecast),
    });
    let now = Arc::new(Mutex::new(at(2)));
    let clock_now = Arc::clone(&now);
    let clock: Clock = Arc::new(move || *clock_now.lock().unwrap());
    let refresh = Refresh {
        latest: Duration::from_secs(300),
        forecast: Duration::from_secs(3600),
        max_age: Duration::from_secs(3600),
        timeout: Duration::from_secs(1),
        retain: Duration::from_secs(48 * 3600),
    };
    let live = LiveCarbon::new(
        provider.clone(),
        BTreeMap::from([("Z".to_string(), "PZ".to_string())]),
        refresh,
        clock,
    );
    (live, provider, now)
}

#[tokio::test]
async fn measured_values_win_over_the_forecast_and_the_latest_holds_until_it() {
    // Latest: a 5-minute point that ended before now (t0+2 min); the forecast starts at
    // t0+10 min and overlaps a measured hour before it.
    let (live, _, _) = source(
        Ok(vec![p(-60, 60, 150.0), p(-5, 5, 140.0)]),
        Ok(vec![p(-30, 30, 999.0), p(10, 60, 300.0), p(70, 60, 320.0)]),
    );
    live.refresh_all().await;
    // The measured hour is not replaced by the forecast.
    assert_eq!(live.intensity_at("Z", at(-40)).await.unwrap(), 150.0);
    // Now: the latest measured value persists until the first forecast point …
    let f = live.forecast("Z", at(0), at(30)).await.unwrap();
    let got: Vec<(DateTime<Utc>, f64)> = f.iter().map(|p| (p.start, p.g_per_kwh)).collect();
    assert_eq!(got, vec![(at(0), 140.0), (at(10), 300.0)], "{f:?}");
    assert_eq!(f[0].duration_s, 600);
    assert_eq!(f[1].duration_s, 20 * 60);
    // … and later hours are the forecast's.
    assert_eq!(live.intensity_at("Z", at(100)).await.unwrap(), 320.0);
    let status = &live.status()[0];
    assert_eq!(status.now_g_per_kwh, Some(140.0));
    assert_eq!(status.horizon_s, Some((130.0 - 2.0) * 60.0));
    assert!(!status.stale);
}

#[tokio::test]
async fn old_data_makes_the_present_unknown_but_keeps_the_past() {
    let (live, provider, now) = source(Ok(vec![p(0, 60, 200.0)]), Ok(vec![p(60, 600, 250.0)]));
    live.refresh_all().await;
    assert_eq!(live.intensity_at("Z", at(30)).await.unwrap(), 200.0);
    // The provider fails from now on; an hour and a bit later the zone is stale.
    *provider.latest.lock().unwrap() = Err(server_error());
    *provider.forecast.lock().unwrap() = Err(server_error());
    *now.lock().unwrap() = at(2 + 61);
    live.refresh("Z", Fetch::Latest).await.unwrap_err();
    let e = live.intensity_at("Z", at(63)).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, CarbonError::Stale { .. }), "{text}");
    assert!(
        text.contains(
            "zone `Z`: scripted carbon data is stale (last refreshed 3660 s ago, limit 3600 s)"
        ),
        "{text}"
    );
    assert!(text.contains("latest refresh: HTTP 500"), "{text}");
    // A forecast window reaching into the present is unknown too; the past is not.
    assert!(live.forecast("Z", at(0), at(90)).await.is_err());
    assert_eq!(live.intensity_at("Z", at(1)).await.unwrap(), 200.0);
    let status = &live.status()[0];
    assert!(status.stale && status.now_g_per_kwh.is_none(), "{status:?}");
    assert_eq!(live.error_counts().get("server"), Some(&1));
    // One good refresh brings it back.
    *provider.latest.lock().unwrap() = Ok(vec![p(60, 60, 210.0)]);
    live.refresh("Z", Fetch::Latest).await.unwrap();
    assert_eq!(live.intensity_at("Z", at(63)).await.unwrap(), 210.0);
    // Only the latest had failed: no error is left.
    assert!(live.status()[0].last_error.is_none());
}

#[tokio::test]
async fn unknown_zones_and_empty_windows_are_errors() {
    let (live, _, _) = source(Ok(vec![p(0, 60, 200.0)]), Ok(vec![p(60, 60, 250.0)]));
    live.refresh_all().await;
    assert!(matches!(
        live.intensity_at("nope", at(3)).await,
        Err(CarbonError::UnknownZone { .. })
    ));
    assert!(matches!(
        live.forecast("Z", at(3), at(3)).await,
        Err(CarbonError::InvalidWindow { .. })
    ));
    assert!(matches!(
        live.intensity_at("Z", at(-600)).await,
        Err(CarbonError::OutOfCoverage { .. })
    ));
}

#[tokio::test]
async fn a_source_never_refreshed_is_stale_not_zero() {
    let (live, _, _) = source(Err(server_error()), Err(server_error()));
    let e = live.intensity_at("Z", at(3)).await.unwrap_err();
    assert!(
        e.to_string().contains("never refreshed successfully"),
        "{e}"
    );
}

#[test]
fn backoff_doubles_from_five_seconds_up_to_the_period() {
    let period = Duration::from_secs(300);
    let waits: Vec<u64> = (1..=8).map(|n| backoff(period, n).as_secs()).collect();
    assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300]);
    let fast = Duration::from_millis(200);
    assert_eq!(backoff(fast, 1), fast);
    assert_eq!(backoff(fast, 30), fast);
}

#[test]
fn old_intervals_are_trimmed() {
    let mut d = ZoneData::default();
    d.insert(&[p(0, 60, 1.0), p(60, 60, 2.0), p(120, 60, 3.0)], true);
    d.trim(at(90));
    assert_eq!(d.series.len(), 2);
    assert_eq!(d.coverage(), Some((at(60), at(180))));
}
