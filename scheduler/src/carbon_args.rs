//! Command-line choice of the carbon-intensity source.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kepler_client::carbon::CarbonCurves;

/// Where grid carbon intensity comes from; later flags override earlier zones.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CarbonArgs {
    /// Static intensity for a zone, `ZONE=GRAMS` (gCO2e/kWh); repeatable.
    #[arg(long = "carbon-static", value_name = "ZONE=G")]
    pub statics: Vec<String>,
    /// A CSV time series (`Time,Carbon Intensity`) for a zone, `ZONE=FILE`; repeatable.
    #[arg(long = "carbon-csv", value_name = "ZONE=FILE")]
    pub csv: Vec<String>,
    /// A Green Software Foundation carbon-aware-sdk forecast JSON file; repeatable.
    #[arg(long = "carbon-forecast", value_name = "FILE")]
    pub forecast: Vec<PathBuf>,
    /// Do not load the embedded 2020 DE/FR/GB curves.
    #[arg(long)]
    pub no_embedded_carbon: bool,
}

fn split_pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k, v)),
        _ => bail!("--{flag} expects KEY=VALUE, got `{s}`"),
    }
}

impl CarbonArgs {
    /// The configured carbon sources in words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.no_embedded_carbon {
            parts.push("embedded 2020 hourly grid intensity of DE, FR, GB (Wiesner et al., Middleware 2021)".to_string());
        }
        parts.extend(
            self.forecast
                .iter()
                .map(|f| format!("carbon-aware-sdk forecast {}", f.display())),
        );
        parts.extend(self.csv.iter().map(|c| format!("CSV {c}")));
        parts.extend(
            self.statics
                .iter()
                .map(|s| format!("constant {s} gCO2e/kWh")),
        );
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }

    /// Loads every configured source into one set of curves.
    pub fn load(&self) -> Result<CarbonCurves> {
        let csv = self
            .csv
            .iter()
            .map(|s| split_pair("carbon-csv", s).map(|(z, f)| (z.to_string(), PathBuf::from(f))))
            .collect::<Result<Vec<_>>>()?;
        let statics = self
            .statics
            .iter()
            .map(|s| {
                let (zone, g) = split_pair("carbon-static", s)?;
                let g: f64 = g
                    .parse()
                    .with_context(|| format!("--carbon-static {s}: `{g}` is not a number"))?;
                Ok((zone.to_string(), g))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CarbonCurves::load(
            !self.no_embedded_carbon,
            &self.forecast,
            csv,
            statics,
        )?)
    }
}

/// Parses repeated `CLUSTER=ZONE` flags.
pub fn cluster_zones(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|s| split_pair("cluster-zone", s).map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}
