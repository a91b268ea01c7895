//! The Green Software Foundation carbon-aware-sdk WebAPI: `/emissions/forecasts/current`
//! (forecasts, 5-minute points by default) and `/emissions/bylocation` (observed emissions)
//! per location, in gCO2e/kWh; an optional bearer token for a gateway in front of it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;

use super::provider::{
    FetchError, Provider, Secret, SecretFile, checked, endpoint, iso, json, send, shown,
};
use crate::carbon::IntensityPoint;

/// How far back `latest` reads the observed emissions.
const LATEST_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// A carbon-aware-sdk WebAPI client.
#[derive(Debug, Clone)]
pub struct CarbonAwareSdk {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretFile>,
    signal: String,
    timeout: Duration,
}

/// One `EmissionsForecast` of `/emissions/forecasts/current`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Forecast {
    forecast_data: Vec<ForecastPoint>,
}

#[derive(Debug, Deserialize)]
struct ForecastPoint {
    timestamp: DateTime<Utc>,
    /// Minutes.
    duration: f64,
    value: f64,
}

/// One `EmissionsData` of `/emissions/bylocation`.
#[derive(Debug, Deserialize)]
struct Emissions {
    time: DateTime<Utc>,
    rating: f64,
    /// A .NET `TimeSpan`: `hh:mm:ss` or `d.hh:mm:ss`.
    duration: String,
}

/// Seconds of a .NET `TimeSpan` (`[-][d.]hh:mm:ss[.fffffff]`).
pub fn timespan_seconds(s: &str) -> Option<i64> {
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<i64>().ok()?, r),
        _ => (0, s),
    };
    let mut parts = rest.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(0..60).contains(&m) || !(0.0..60.0).contains(&sec) {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec.round() as i64)
}

impl CarbonAwareSdk {
    /// A client of the WebAPI at `base`; `signal` says what its data source reports
    /// (`average`, or `marginal` behind WattTime).
    pub fn new(
        http: reqwest::Client,
        base: Url,
        token: Option<SecretFile>,
        signal: String,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base,
            token,
            signal,
            timeout,
        }
    }

    async fn get(
        &self,
        path: &str,
        location: &str,
        extra: &[(&str, String)],
    ) -> Result<(Url, Vec<u8>), FetchError> {
        let mut pairs = vec![("location", location.to_string())];
        pairs.extend(extra.iter().cloned());
        let url = endpoint(&self.base, path, &pairs);
        let mut request = self.http.get(url.clone());
        let token = self.token.as_ref().map(SecretFile::read).transpose()?;
        if let Some(t) = &token {
            request = request.bearer_auth(t.expose());
        }
        let secrets: Vec<&str> = token.iter().map(Secret::expose).collect();
        match send(request, &url, self.timeout, &secrets).await {
            Ok((status, _)) if status == reqwest::StatusCode::NO_CONTENT => {
                Err(FetchError::Empty {
                    url: shown(&url),
                    zone: location.to_string(),
                })
            }
            Ok((_, body)) => Ok((url, body)),
            Err(FetchError::Client {
                status: s @ (400 | 404),
                url: at,
                message,
            }) if message.to_lowercase().contains("location") => Err(FetchError::UnknownZone {
                url: at,
                zone: location.to_string(),
                message: format!("HTTP {s}: {message}"),
            }),
            Err(e) => Err(e),
        }
    }

    async fn emissions(
        &self,
        location: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let range = [("time", iso(from)), ("toTime", iso(to))];
        let (url, body) = self.get("/emissions/bylocation", location, &range).await?;
        let data: Vec<Emissions> = json(&url, &body)?;
        let mut points = Vec::with_capacity(data.len());
        for (i, e) in data.into_iter().enumerate() {
            let duration_s = timespan_seconds(&e.duration)
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    FetchError::malformed(
                        &url,
                        format!(
                            "at [{i}].duration: `{}` is not a positive TimeSpan (hh:mm:ss)",
                            e.duration
                        ),
                    )
                })?;
            points.push(IntensityPoint {
                start: e.time,
                duration_s,
                g_per_kwh: e.rating,
            });
        }
        non_empty(&url, location, points)
    }
}

fn non_empty(
    url: &Url,
    location: &str,
    points: Vec<IntensityPoint>,
) -> Result<Vec<IntensityPoint>, FetchError> {
    if points.is_empty() {
        return Err(FetchError::Empty {
            url: shown(url),
            zone: location.to_string(),
        });
    }
    let points = checked(url, points)?;
    // Overlapping answers (e.g. two data sources) keep the earlier point whole.
    let mut out: Vec<IntensityPoint> = Vec::with_capacity(points.len());
    for p in points {
        match out.last() {
            Some(last) if p.start < last.start + chrono::Duration::seconds(last.duration_s) => {}
            _ => out.push(p),
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Provider for CarbonAwareSdk {
    fn name(&self) -> &'static str {
        "carbon-aware-sdk"
    }

    fn signal(&self) -> &str {
        &self.signal
    }

    fn max_history_span(&self) -> chrono::Duration {
        chrono::Duration::days(7)
    }

    async fn latest(
        &self,
        zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        self.emissions(zone, now - LATEST_WINDOW, now).await
    }

    async fn forecast(
        &self,
        zone: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let (url, body) = self.get("/emissions/forecasts/current", zone, &[]).await?;
        let forecasts: Vec<Forecast> = json(&url, &body)?;
        let mut points = Vec::new();
        for (i, f) in forecasts.into_iter().enumerate() {
            for (j, p) in f.forecast_data.into_iter().enumerate() {
                if !(p.duration.is_finite() && p.duration > 0.0) {
                    return Err(FetchError::malformed(
                        &url,
                        format!(
                            "at [{i}].forecastData[{j}].duration: {} is not a positive number of minutes",
                            p.duration
                        ),
                    ));
                }
                points.push(IntensityPoint {
                    start: p.timestamp,
                    duration_s: (p.duration * 60.0).round() as i64,
                    g_per_kwh: p.value,
                });
            }
        }
        non_empty(&url, zone, points)
    }

    async fn history(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        self.emissions(zone, from, to).await
    }
}
