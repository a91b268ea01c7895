//! `carbon`: where grid carbon intensity comes from (embedded curves, forecast and CSV files,
//! constants, or a Prometheus metric).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field};

/// Grid carbon intensity sources: curves from files and constants (later ones override
/// earlier zones), or a Prometheus metric with one series per zone.
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
}

impl CarbonConfig {
    /// Semantic checks; the field path below `carbon`.
    pub fn check(&self) -> Checked {
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
