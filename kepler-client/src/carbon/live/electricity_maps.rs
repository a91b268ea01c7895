//! Electricity Maps API v3: `carbon-intensity/latest`, `/forecast` and `/past-range`, hourly
//! gCO2e/kWh per zone, authenticated by the `auth-token` header.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;

use super::provider::{
    FetchError, Provider, SecretFile, checked, endpoint, iso, json, send, shown, stepwise,
};
use crate::carbon::IntensityPoint;

/// Electricity Maps' data granularity: one value per hour.
const HOUR_S: i64 = 3600;

/// Which emission factors Electricity Maps applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmissionFactor {
    /// Life-cycle factors (construction, fuel supply, …): Electricity Maps' default.
    #[default]
    Lifecycle,
    /// Direct (combustion) factors only.
    Direct,
}

impl EmissionFactor {
    /// The API's `emissionFactorType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lifecycle => "lifecycle",
            Self::Direct => "direct",
        }
    }
}

/// An Electricity Maps client.
#[derive(Debug, Clone)]
pub struct ElectricityMaps {
    http: reqwest::Client,
    base: Url,
    token: SecretFile,
    factor: EmissionFactor,
    disable_estimations: bool,
    timeout: Duration,
}

impl ElectricityMaps {
    /// A client of `base` (e.g. `https://api.electricitymap.org`), reading the token from
    /// `token` on every call.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        token: SecretFile,
        factor: EmissionFactor,
        disable_estimations: bool,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base,
            token,
            factor,
            disable_estimations,
            timeout,
        }
    }

    async fn get(
        &self,
        path: &str,
        zone: &str,
        extra: &[(&str, String)],
    ) -> Result<(Url, Vec<u8>), FetchError> {
        let mut pairs = vec![
            ("zone", zone.to_string()),
            ("emissionFactorType", self.factor.as_str().to_string()),
        ];
        if self.disable_estimations {
            pairs.push(("disableEstimations", "true".to_string()));
        }
        pairs.extend(extra.iter().cloned());
        let url = endpoint(&self.base, path, &pairs);
        let token = self.token.read()?;
        let request = self
            .http
            .get(url.clone())
            .header("auth-token", token.expose());
        match send(request, &url, self.timeout, &[token.expose()]).await {
            Ok((_, body)) => Ok((url, body)),
            Err(FetchError::Client {
                status,
                url: at,
                message,
            }) if (status == 400 || status == 404) && message.to_lowercase().contains("zone") => {
                Err(FetchError::UnknownZone {
                    url: at,
                    zone: zone.to_string(),
                    message,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Points from hourly values, each an hour long, checked.
    fn points(
        url: &Url,
        zone: &str,
        values: Vec<Value>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let samples: Vec<(DateTime<Utc>, f64)> = values
            .into_iter()
            .filter_map(|v| v.carbon_intensity.map(|g| (v.datetime, g)))
            .collect();
        if samples.is_empty() {
            return Err(FetchError::Empty {
                url: shown(url),
                zone: zone.to_string(),
            });
        }
        checked(url, stepwise(samples, HOUR_S))
    }
}

/// One hourly value (`latest`, and the items of `forecast` and `past-range`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Value {
    /// gCO2e/kWh; `null` where Electricity Maps has no value for the hour.
    carbon_intensity: Option<f64>,
    /// Start of the hour.
    datetime: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Forecast {
    forecast: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Range {
    data: Vec<Value>,
}

#[async_trait::async_trait]
impl Provider for ElectricityMaps {
    fn name(&self) -> &'static str {
        "electricitymaps"
    }

    fn signal(&self) -> &str {
        self.factor.as_str()
    }

    fn max_history_span(&self) -> chrono::Duration {
        // past-range answers at most 10 days of hourly data per call.
        chrono::Duration::days(10)
    }

    async fn latest(
        &self,
        zone: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let (url, body) = self.get("/v3/carbon-intensity/latest", zone, &[]).await?;
        let v: Value = json(&url, &body)?;
        Self::points(&url, zone, vec![v])
    }

    async fn forecast(
        &self,
        zone: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let (url, body) = self.get("/v3/carbon-intensity/forecast", zone, &[]).await?;
        let f: Forecast = json(&url, &body)?;
        Self::points(&url, zone, f.forecast)
    }

    async fn history(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let range = [("start", iso(from)), ("end", iso(to))];
        let (url, body) = self
            .get("/v3/carbon-intensity/past-range", zone, &range)
            .await?;
        let r: Range = json(&url, &body)?;
        Self::points(&url, zone, r.data)
    }
}
