//! Command-line arguments shared by several subcommands: how to reach and read Kepler in
//! Prometheus/Thanos, where grid carbon intensity comes from, and cluster carbon zones.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use kepler_client::carbon::{CarbonCurves, CarbonIntensitySource};
use kepler_client::prom::Endpoint;
use kepler_client::{KeplerSchema, PowerZone, PrometheusConfig};

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
    /// Read grid carbon intensity as `serve` does, from this configuration file's `carbon`
    /// section — e.g. a live Electricity Maps, WattTime or carbon-aware-sdk source, whose
    /// history is read for the period asked about; replaces the flags above.
    #[arg(
        long = "carbon-config",
        value_name = "FILE",
        conflicts_with_all = ["statics", "csv", "forecast"]
    )]
    pub config: Option<PathBuf>,
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

    /// The carbon source to read `[from, to)` from, and what it is in words: the
    /// configuration file's (a live provider's history over the period, and its latest
    /// value and forecast when the period reaches the last hour), else the flags' curves.
    pub async fn source(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(Arc<dyn CarbonIntensitySource>, String)> {
        let Some(path) = &self.config else {
            return Ok((Arc::new(self.load()?), self.describe()));
        };
        let config = crate::config::Config::load(path)?;
        let now = Utc::now();
        if let Some(live) = crate::runtime::live_carbon(&config.carbon, Arc::new(Utc::now))
            .with_context(|| format!("{}: carbon", path.display()))?
        {
            let until = to.min(now);
            if from < until
                && let Err(e) = live.load_history(from, until).await
            {
                eprintln!(
                    "warning: {}: {e}; carbon is unknown where the history is missing",
                    live.source_name()
                );
            }
            if to > now - chrono::Duration::hours(1) {
                live.refresh_all().await;
                for z in live.status() {
                    if let Some(e) = z.last_error {
                        eprintln!("warning: carbon zone `{}`: {e}", z.zone);
                    }
                }
            }
            let what = live.describe();
            return Ok((Arc::new(live), what));
        }
        if config.carbon.prometheus.is_some() {
            let (_, carbon) = crate::runtime::sources(&config, "for carbon.prometheus")?;
            let what = format!("the Prometheus metric of {}", path.display());
            return Ok((carbon.source, what));
        }
        let curves = crate::runtime::curves(&config.carbon)
            .with_context(|| format!("{}: carbon", path.display()))?;
        let zones: Vec<&str> = curves.zones().collect();
        let what = format!(
            "the `carbon` section of {} ({})",
            path.display(),
            zones.join(", ")
        );
        Ok((Arc::new(curves), what))
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

/// Connection and schema flags shared by every command that reads Kepler from Prometheus.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// File with a bearer token for Prometheus/Thanos.
    #[arg(long)]
    pub bearer_token_file: Option<String>,
    /// PEM file with CA certificates to trust.
    #[arg(long)]
    pub ca_file: Option<String>,
    /// PEM file with a client certificate and key.
    #[arg(long)]
    pub client_cert_file: Option<String>,
    /// Per-query timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout_s: f64,
    /// Force a Kepler schema (`v0.10` or `v0.7`) instead of detecting it.
    #[arg(long)]
    pub schema: Option<KeplerSchema>,
    /// Power zone to read (`package`, `psys`, `dram`, ...).
    #[arg(long, default_value = "package")]
    pub zone: String,
    /// Label that splits series by cluster.
    #[arg(long, default_value = "cluster")]
    pub cluster_label: String,
    /// Label holding the node name (default: `node_name`, or `instance` for v0.7).
    #[arg(long)]
    pub node_label: Option<String>,
    /// Thanos Query: deduplicate replicas.
    #[arg(long)]
    pub thanos_dedup: bool,
    /// Thanos Query: accept partial responses.
    #[arg(long)]
    pub thanos_partial_response: bool,
}

impl ConnectionArgs {
    /// The Prometheus source settings for the store at `url`.
    pub fn config(&self, url: &str) -> PrometheusConfig {
        PrometheusConfig {
            endpoint: Endpoint {
                url: url.to_string(),
                bearer_token_file: self.bearer_token_file.clone(),
                ca_file: self.ca_file.clone(),
                client_cert_file: self.client_cert_file.clone(),
                timeout_s: self.timeout_s,
                thanos_dedup: self.thanos_dedup.then_some(true),
                thanos_partial_response: self.thanos_partial_response.then_some(true),
                ..Endpoint::default()
            },
            schema: self.schema,
            zone: PowerZone(self.zone.clone()),
            cluster_label: self.cluster_label.clone(),
            node_label: self.node_label.clone(),
            ..PrometheusConfig::default()
        }
    }
}
