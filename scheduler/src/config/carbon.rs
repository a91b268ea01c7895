//! `carbon`: where grid carbon intensity comes from (embedded curves, forecast and CSV files,
//! constants, a Prometheus metric, or a live Electricity Maps, WattTime or carbon-aware-sdk
//! source).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use kepler_client::carbon::live;

use super::{Checked, field};

/// Grid carbon intensity sources: curves from files and constants (later ones override
/// earlier zones), a Prometheus metric with one series per zone, or one live provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CarbonConfig {
    /// Load the embedded 2020 DE/FR/GB hourly curves (they cover 2020 only: replays, demos).
    pub embedded2020: bool,
    /// Green Software Foundation carbon-aware-sdk forecast JSON files.
    pub forecast_files: Vec<PathBuf>,
    /// Per zone, a CSV time series (`Time,Carbon Intensity`).
    pub csv_files: BTreeMap<String, PathBuf>,
    /// Per zone, a constant intensity in gCO2e/kWh.
    pub static_g_per_kwh: BTreeMap<String, f64>,
    /// A Prometheus metric with one series per zone, read over `telemetry.prometheus`'s
    /// connection; not combined with the fields above.
    pub prometheus: Option<kepler_client::carbon::PrometheusCarbonConfig>,
    /// Electricity Maps API v3 (latest, forecast, past range), refreshed in the
    /// background; not combined with any other source.
    pub electricity_maps: Option<live::ElectricityMapsConfig>,
    /// WattTime v3 marginal `co2_moer` (forecast, historical), refreshed in the background;
    /// not combined with any other source.
    pub watt_time: Option<live::WattTimeConfig>,
    /// A Green Software Foundation carbon-aware-sdk WebAPI (current forecasts, emissions
    /// by location), refreshed in the background; not combined with any other source.
    pub carbon_aware_sdk: Option<live::CarbonAwareSdkConfig>,
}

impl CarbonConfig {
    /// The live source's key and its refresh settings, when one is configured.
    fn live_keys(&self) -> Vec<(&'static str, &live::LiveRefreshConfig)> {
        let mut out = Vec::new();
        if let Some(c) = &self.electricity_maps {
            out.push(("electricityMaps", &c.refresh));
        }
        if let Some(c) = &self.watt_time {
            out.push(("wattTime", &c.refresh));
        }
        if let Some(c) = &self.carbon_aware_sdk {
            out.push(("carbonAwareSdk", &c.refresh));
        }
        out
    }

    /// Whether a live provider (Electricity Maps, WattTime, carbon-aware-sdk) is configured.
    pub fn is_live(&self) -> bool {
        !self.live_keys().is_empty()
    }

    /// Semantic checks; the field path below `carbon`.
    pub fn check(&self) -> Checked {
        let live = self.live_keys();
        if let Some((key, refresh)) = live.first() {
            if let Some((other, _)) = live.get(1) {
                return field(
                    other,
                    format!("cannot be combined with {key}: configure one live carbon source"),
                );
            }
            if self.prometheus.is_some()
                || self.embedded2020
                || !self.forecast_files.is_empty()
                || !self.csv_files.is_empty()
                || !self.static_g_per_kwh.is_empty()
            {
                return field(
                    key,
                    "cannot be combined with prometheus, embedded2020, forecastFiles, csvFiles or staticGPerKwh".into(),
                );
            }
            if let Err(kepler_client::carbon::CarbonError::Config { field: f, message }) =
                refresh.refresh(&format!("carbon.{key}"))
            {
                return field(f.trim_start_matches("carbon."), message);
            }
        }
        if let Some(Err((f, r))) = self.prometheus.as_ref().map(|p| p.check()) {
            return field(&format!("prometheus.{f}"), r.into());
        }
        if self.prometheus.is_some()
            && (self.embedded2020
                || !self.forecast_files.is_empty()
                || !self.csv_files.is_empty()
                || !self.static_g_per_kwh.is_empty())
        {
            return field(
                "prometheus",
                "cannot be combined with embedded2020, forecastFiles, csvFiles or staticGPerKwh"
                    .into(),
            );
        }
        for (zone, g) in &self.static_g_per_kwh {
            if !(g.is_finite() && *g >= 0.0) {
                return field(
                    &format!("staticGPerKwh.{zone}"),
                    format!("{g} is not an intensity in gCO2e/kWh"),
                );
            }
        }
        Ok(())
    }
}
