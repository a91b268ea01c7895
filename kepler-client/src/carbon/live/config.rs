//! The configuration of each live source (the `carbon.electricityMaps`, `carbon.wattTime`
//! and `carbon.carbonAwareSdk` keys), checked without touching the network.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::carbon_aware_sdk::CarbonAwareSdk;
use super::electricity_maps::{ElectricityMaps, EmissionFactor};
use super::provider::SecretFile;
use super::watttime::WattTime;
use super::{LiveCarbon, Refresh};
use crate::carbon::CarbonError;
use crate::refresher::Clock;

/// How often a live source refreshes and when its data goes stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LiveRefreshConfig {
    /// Period of the latest-value refresh, seconds.
    pub latest_seconds: f64,
    /// Period of the forecast refresh, seconds.
    pub forecast_seconds: f64,
    /// A zone whose last successful refresh is older than this is unknown (carbon_missing).
    pub max_age_seconds: f64,
    /// Bound of one call to the provider, seconds.
    pub timeout_seconds: f64,
    /// Hours of past values kept in memory.
    pub retain_hours: f64,
}

impl Default for LiveRefreshConfig {
    fn default() -> Self {
        Self {
            latest_seconds: 300.0,
            forecast_seconds: 3600.0,
            max_age_seconds: 3600.0,
            timeout_seconds: 10.0,
            retain_hours: 48.0,
        }
    }
}

fn seconds(field: &str, v: f64, max: f64) -> Result<Duration, CarbonError> {
    if !(v.is_finite() && v >= 0.001 && v <= max) {
        return Err(config_err(
            field,
            format!("{v} must be a positive number of seconds, at most {max}"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn config_err(field: &str, message: impl Into<String>) -> CarbonError {
    CarbonError::Config {
        field: field.to_string(),
        message: message.into(),
    }
}

impl LiveRefreshConfig {
    /// The periods as durations; `prefix` names the key in errors.
    pub fn refresh(&self, prefix: &str) -> Result<Refresh, CarbonError> {
        let f = |k: &str| format!("{prefix}.refresh.{k}");
        let latest = seconds(&f("latestSeconds"), self.latest_seconds, 86_400.0)?;
        let forecast = seconds(&f("forecastSeconds"), self.forecast_seconds, 86_400.0)?;
        let max_age = seconds(&f("maxAgeSeconds"), self.max_age_seconds, 7.0 * 86_400.0)?;
        let timeout = seconds(&f("timeoutSeconds"), self.timeout_seconds, 600.0)?;
        let retain = seconds(
            &f("retainHours"),
            self.retain_hours * 3600.0,
            31.0 * 86_400.0,
        )
        .map_err(|_| {
            config_err(
                &f("retainHours"),
                format!(
                    "{} must be a positive number of hours, at most 744",
                    self.retain_hours
                ),
            )
        })?;
        if max_age < latest.min(forecast) {
            return Err(config_err(
                &f("maxAgeSeconds"),
                format!(
                    "{} is shorter than the shortest refresh period ({} s): every zone would go stale between refreshes",
                    self.max_age_seconds,
                    latest.min(forecast).as_secs_f64()
                ),
            ));
        }
        Ok(Refresh {
            latest,
            forecast,
            max_age,
            timeout,
            retain,
        })
    }
}

/// Electricity Maps API v3 (`carbon.electricityMaps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ElectricityMapsConfig {
    /// ecoplace zone → Electricity Maps zone (e.g. `DE: DE`, `us-west: US-CAL-CISO`).
    pub zones: BTreeMap<String, String>,
    /// API base URL.
    #[serde(default = "ElectricityMapsConfig::default_url")]
    pub url: String,
    /// File holding the `auth-token` (a mounted Secret), re-read on every call.
    pub token_file: PathBuf,
    /// `lifecycle` (Electricity Maps' default) or `direct` emission factors.
    #[serde(default)]
    pub emission_factor_type: EmissionFactorConfig,
    /// Ask for measured values only (`disableEstimations=true`).
    #[serde(default)]
    pub disable_estimations: bool,
    /// Refresh periods and staleness limit.
    #[serde(default)]
    pub refresh: LiveRefreshConfig,
}

/// `lifecycle` or `direct`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EmissionFactorConfig {
    /// Life-cycle emission factors.
    #[default]
    Lifecycle,
    /// Direct (combustion) emission factors.
    Direct,
}

impl From<EmissionFactorConfig> for EmissionFactor {
    fn from(v: EmissionFactorConfig) -> Self {
        match v {
            EmissionFactorConfig::Lifecycle => Self::Lifecycle,
            EmissionFactorConfig::Direct => Self::Direct,
        }
    }
}

/// WattTime v3 (`carbon.wattTime`): marginal `co2_moer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WattTimeConfig {
    /// ecoplace zone → WattTime region (e.g. `us-west: CAISO_NORTH`).
    pub zones: BTreeMap<String, String>,
    /// API base URL.
    #[serde(default = "WattTimeConfig::default_url")]
    pub url: String,
    /// Login URL (basic auth → token).
    #[serde(default = "WattTimeConfig::default_login_url")]
    pub login_url: String,
    /// File holding the WattTime username.
    pub username_file: PathBuf,
    /// File holding the WattTime password.
    pub password_file: PathBuf,
    /// Hours of forecast asked for (1–72).
    #[serde(default = "WattTimeConfig::default_horizon")]
    pub horizon_hours: u32,
    /// Refresh periods and staleness limit.
    #[serde(default)]
    pub refresh: LiveRefreshConfig,
}

/// A Green Software Foundation carbon-aware-sdk WebAPI (`carbon.carbonAwareSdk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CarbonAwareSdkConfig {
    /// ecoplace zone → the WebAPI's location (e.g. `eu-west: westeurope`).
    pub zones: BTreeMap<String, String>,
    /// The WebAPI's base URL (e.g. `http://carbon-aware-sdk.carbon:8080`).
    pub url: String,
    /// Optional file holding a bearer token for a gateway in front of the WebAPI.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// What its data source reports: `average` (Electricity Maps behind it) or `marginal`
    /// (WattTime behind it).
    #[serde(default = "CarbonAwareSdkConfig::default_signal")]
    pub signal: String,
    /// Refresh periods and staleness limit.
    #[serde(default)]
    pub refresh: LiveRefreshConfig,
}

impl ElectricityMapsConfig {
    fn default_url() -> String {
        "https://api.electricitymap.org".into()
    }

    /// Checks every setting (files exist, URL, periods) and builds the source.
    pub fn build(&self, clock: Clock) -> Result<LiveCarbon, CarbonError> {
        const P: &str = "carbon.electricityMaps";
        let refresh = self.refresh.refresh(P)?;
        let base = parse_url(&format!("{P}.url"), &self.url)?;
        check_zones(P, &self.zones)?;
        let token = secret_file(&format!("{P}.tokenFile"), &self.token_file, "auth-token")?;
        let provider = ElectricityMaps::new(
            http_client(P)?,
            base,
            token,
            self.emission_factor_type.into(),
            self.disable_estimations,
            refresh.timeout,
        );
        Ok(LiveCarbon::new(
            Arc::new(provider),
            self.zones.clone(),
            refresh,
            clock,
        ))
    }
}

impl WattTimeConfig {
    fn default_url() -> String {
        "https://api.watttime.org".into()
    }

    fn default_login_url() -> String {
        "https://api.watttime.org/login".into()
    }

    fn default_horizon() -> u32 {
        24
    }

    /// Checks every setting (files exist, URLs, periods) and builds the source.
    pub fn build(&self, clock: Clock) -> Result<LiveCarbon, CarbonError> {
        const P: &str = "carbon.wattTime";
        let refresh = self.refresh.refresh(P)?;
        let base = parse_url(&format!("{P}.url"), &self.url)?;
        let login = parse_url(&format!("{P}.loginUrl"), &self.login_url)?;
        check_zones(P, &self.zones)?;
        if !(1..=72).contains(&self.horizon_hours) {
            return Err(config_err(
                &format!("{P}.horizonHours"),
                format!("{} must be 1–72 hours", self.horizon_hours),
            ));
        }
        let username = secret_file(
            &format!("{P}.usernameFile"),
            &self.username_file,
            "username",
        )?;
        let password = secret_file(
            &format!("{P}.passwordFile"),
            &self.password_file,
            "password",
        )?;
        let provider = WattTime::new(
            http_client(P)?,
            base,
            login,
            username,
            password,
            self.horizon_hours,
            refresh.timeout,
        );
        Ok(LiveCarbon::new(
            Arc::new(provider),
            self.zones.clone(),
            refresh,
            clock,
        ))
    }
}

impl CarbonAwareSdkConfig {
    fn default_signal() -> String {
        "average".into()
    }

    /// Checks every setting (files exist, URL, periods) and builds the source.
    pub fn build(&self, clock: Clock) -> Result<LiveCarbon, CarbonError> {
        const P: &str = "carbon.carbonAwareSdk";
        let refresh = self.refresh.refresh(P)?;
        let base = parse_url(&format!("{P}.url"), &self.url)?;
        check_zones(P, &self.zones)?;
        if !matches!(self.signal.as_str(), "average" | "marginal") {
            return Err(config_err(
                &format!("{P}.signal"),
                format!("`{}` must be `average` or `marginal`", self.signal),
            ));
        }
        let token = self
            .token_file
            .as_ref()
            .map(|p| secret_file(&format!("{P}.tokenFile"), p, "bearer token"))
            .transpose()?;
        let provider = CarbonAwareSdk::new(
            http_client(P)?,
            base,
            token,
            self.signal.clone(),
            refresh.timeout,
        );
        Ok(LiveCarbon::new(
            Arc::new(provider),
            self.zones.clone(),
            refresh,
            clock,
        ))
    }
}

fn parse_url(field: &str, s: &str) -> Result<Url, CarbonError> {
    let url = Url::parse(s).map_err(|e| config_err(field, format!("`{s}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config_err(
            field,
            format!("`{s}` must be an http or https URL"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(config_err(
            field,
            "must not carry credentials or a query string: put secrets in the *File settings",
        ));
    }
    Ok(url)
}

fn check_zones(prefix: &str, zones: &BTreeMap<String, String>) -> Result<(), CarbonError> {
    if zones.is_empty() {
        return Err(config_err(
            &format!("{prefix}.zones"),
            "must map at least one ecoplace zone to the provider's zone",
        ));
    }
    for (zone, theirs) in zones {
        if zone.trim().is_empty() || theirs.trim().is_empty() {
            return Err(config_err(
                &format!("{prefix}.zones"),
                format!("`{zone}: {theirs}`: zone names must not be empty"),
            ));
        }
    }
    Ok(())
}

/// A credential file that exists and is not empty now (it is re-read on every use).
fn secret_file(
    field: &str,
    path: &std::path::Path,
    what: &'static str,
) -> Result<SecretFile, CarbonError> {
    let file = SecretFile {
        path: path.to_path_buf(),
        what,
    };
    file.read().map_err(|e| config_err(field, e.to_string()))?;
    Ok(file)
}

fn http_client(prefix: &str) -> Result<reqwest::Client, CarbonError> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("ecoplace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config_err(prefix, format!("cannot build HTTP client: {e}")))
}
