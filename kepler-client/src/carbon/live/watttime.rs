//! WattTime API v3: marginal operating emissions (`co2_moer`) per region from `/v3/forecast`
//! and `/v3/historical`, converted from lbs/MWh to gCO2e/kWh; a bearer token from `/login`
//! (HTTP basic auth), renewed before it expires and again on a 401.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::provider::{
    FetchError, Provider, Secret, SecretFile, checked, endpoint, iso, json, send, shown, stepwise,
};
use crate::carbon::IntensityPoint;

/// Grams per pound.
pub const GRAMS_PER_POUND: f64 = 453.592_37;

/// WattTime tokens expire after 30 minutes; renew a little before.
const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(25);

/// How far back `latest` reads the historical signal.
const LATEST_WINDOW: chrono::Duration = chrono::Duration::minutes(30);

/// gCO2e/kWh per unit WattTime reports in (`meta.units`).
pub fn g_per_kwh_per_unit(units: &str) -> Option<f64> {
    match units {
        // 1 lb/MWh = 453.59237 g / 1000 kWh.
        "lbs_co2_per_mwh" | "lbs_per_mwh" => Some(GRAMS_PER_POUND / 1000.0),
        "kg_co2_per_mwh" | "g_co2_per_kwh" => Some(1.0),
        _ => None,
    }
}

/// A WattTime client.
#[derive(Debug)]
pub struct WattTime {
    http: reqwest::Client,
    base: Url,
    login: Url,
    username: SecretFile,
    password: SecretFile,
    timeout: Duration,
    horizon_hours: u32,
    token: Mutex<Option<(Secret, DateTime<Utc>)>>,
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `/v3/forecast` and `/v3/historical` answers.
#[derive(Debug, Deserialize)]
struct Signal {
    data: Vec<Sample>,
    meta: Meta,
}

#[derive(Debug, Deserialize)]
struct Sample {
    point_time: DateTime<Utc>,
    value: f64,
}

#[derive(Debug, Deserialize)]
struct Meta {
    units: String,
    #[serde(default)]
    data_point_period_seconds: Option<i64>,
}

impl WattTime {
    /// A client of `base` (e.g. `https://api.watttime.org`) logging in at `login`.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        login: Url,
        username: SecretFile,
        password: SecretFile,
        horizon_hours: u32,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base,
            login,
            username,
            password,
            timeout,
            horizon_hours,
            token: Mutex::new(None),
        }
    }

    /// The current token, logging in when there is none or it is about to expire.
    async fn token(&self, now: DateTime<Utc>, renew: bool) -> Result<Secret, FetchError> {
        let mut held = self.token.lock().await;
        if !renew
            && let Some((t, at)) = held.as_ref()
            && now - *at < TOKEN_LIFETIME
        {
            return Ok(t.clone());
        }
        let user = self.username.read()?;
        let pass = self.password.read()?;
        let request = self
            .http
            .get(self.login.clone())
            .basic_auth(user.expose(), Some(pass.expose()));
        // The basic-auth header's value is as secret as the password.
        let basic = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                user.expose(),
                pass.expose()
            ))
        };
        let secrets = [pass.expose(), basic.as_str()];
        let (_, body) = send(request, &self.login, self.timeout, &secrets).await?;
        let login: Login = json(&self.login, &body)?;
        if login.token.trim().is_empty() {
            return Err(FetchError::malformed(&self.login, "empty token"));
        }
        let token = Secret::new(login.token);
        *held = Some((token.clone(), now));
        Ok(token)
    }

    /// GET `path` with the signal query, renewing the token once on a 401.
    async fn signal(
        &self,
        path: &str,
        region: &str,
        extra: &[(&str, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let mut pairs = vec![
            ("region", region.to_string()),
            ("signal_type", "co2_moer".to_string()),
        ];
        pairs.extend(extra.iter().cloned());
        let url = endpoint(&self.base, path, &pairs);
        let mut renew = false;
        let body = loop {
            let token = self.token(now, renew).await?;
            let request = self.http.get(url.clone()).bearer_auth(token.expose());
            match send(request, &url, self.timeout, &[token.expose()]).await {
                Ok((_, body)) => break body,
                Err(FetchError::Unauthorized { status: 401, .. }) if !renew => renew = true,
                Err(FetchError::Client {
                    status: 400 | 404,
                    url: at,
                    message,
                }) if message.to_lowercase().contains("region") => {
                    return Err(FetchError::UnknownZone {
                        url: at,
                        zone: region.to_string(),
                        message,
                    });
                }
                Err(e) => return Err(e),
            }
        };
        let s: Signal = json(&url, &body)?;
        let factor = g_per_kwh_per_unit(&s.meta.units).ok_or_else(|| {
            FetchError::malformed(
                &url,
                format!(
                    "meta.units `{}` is not a unit ecoplace converts (lbs_co2_per_mwh)",
                    s.meta.units
                ),
            )
        })?;
        if s.data.is_empty() {
            return Err(FetchError::Empty {
                url: shown(&url),
                zone: region.to_string(),
            });
        }
        let period = s
            .meta
            .data_point_period_seconds
            .filter(|p| *p > 0)
            .unwrap_or(300);
        let samples = s
            .data
            .into_iter()
            .map(|p| (p.point_time, p.value * factor))
            .collect();
        checked(&url, stepwise(samples, period))
    }
}

#[async_trait::async_trait]
impl Provider for WattTime {
    fn name(&self) -> &'static str {
        "watttime"
    }

    fn signal(&self) -> &str {
        "marginal"
    }

    fn max_history_span(&self) -> chrono::Duration {
        // /v3/historical answers at most 32 days per call.
        chrono::Duration::days(32)
    }

    async fn latest(
        &self,
        zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let range = [("start", iso(now - LATEST_WINDOW)), ("end", iso(now))];
        self.signal("/v3/historical", zone, &range, now).await
    }

    async fn forecast(
        &self,
        zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let horizon = [("horizon_hours", self.horizon_hours.to_string())];
        self.signal("/v3/forecast", zone, &horizon, now).await
    }

    async fn history(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError> {
        let range = [("start", iso(from)), ("end", iso(to))];
        self.signal("/v3/historical", zone, &range, Utc::now())
            .await
    }
}
