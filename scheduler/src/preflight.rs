//! Start-up checks shared by `ecoplace config check` and every verb that runs from a
//! configuration (`serve`, `ocm-scores`, `rebalance --nodes`): everything that would refuse
//! a configuration at start — addresses, files, URLs, the carbon sources a verb needs —
//! each naming its field path, and warnings for a configuration that starts but cannot
//! decide (no carbon source covers the present, an unknown user region, a power model that
//! does not load).
//!
//! [`Config::load`] checks the file alone (types, ranges); this reads what it points at.
//! It may import `config`, `runtime` (the carbon curves) and `server` (TLS files).

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use kepler_client::PrometheusConfig;
use kepler_client::carbon::CarbonCurves;

use crate::config::Config;

/// What a configuration is checked for: the verb that will run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verb {
    /// `ecoplace serve` on a live cluster (with `ocm.enabled`: the publisher too).
    Serve,
    /// `ecoplace serve --demo`: the embedded fleet, no Prometheus.
    Demo,
    /// `ecoplace ocm-scores`.
    OcmScores,
    /// `ecoplace rebalance --nodes`.
    Rebalance,
    /// `ecoplace carbon-window`.
    CarbonWindow,
}

impl Verb {
    /// How the verb is invoked, for messages.
    fn invocation(self) -> &'static str {
        match self {
            Self::Serve => "ecoplace serve",
            Self::Demo => "ecoplace serve --demo",
            Self::OcmScores => "ecoplace ocm-scores",
            Self::Rebalance => "ecoplace rebalance --nodes",
            Self::CarbonWindow => "ecoplace carbon-window",
        }
    }

    /// Whether it reads telemetry and carbon from the configured sources in real time.
    fn live(self) -> bool {
        self != Self::Demo
    }

    /// Whether it runs the OCM score publisher (and so needs its Lease namespace).
    fn publishes(self, config: &Config) -> bool {
        self == Self::OcmScores || (self == Self::Serve && config.ocm.enabled)
    }

    /// Whether it reads Kepler telemetry (the carbon-window controller reads only carbon).
    fn reads_telemetry(self) -> bool {
        self.live() && self != Self::CarbonWindow
    }

    /// Whether it runs the carbon-window controller (and so needs its Lease namespace).
    fn gates(self, config: &Config) -> bool {
        self == Self::CarbonWindow || (self == Self::Serve && config.carbon_window.enabled)
    }

    /// Whether it serves the extender's HTTP endpoints.
    fn serves(self) -> bool {
        matches!(self, Self::Serve | Self::Demo)
    }
}

/// One finding: the field path and what is wrong (or doubtful) there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted field path (`extender.tls.certFile`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A configuration the verb would refuse at start.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {finding}")]
pub struct Refusal {
    /// The configuration file (or `ecoplace.yaml` for defaults).
    pub file: String,
    /// The field and why.
    pub finding: Finding,
}

fn finding(path: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        path: path.into(),
        message: message.into(),
    }
}

/// Checks `config` (read from `file`) for `verb` at `now`, in the process environment: the
/// first refusal, or the warnings (empty: it can decide).
pub fn check(
    config: &Config,
    file: &str,
    verb: Verb,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, Refusal> {
    let refuse = |finding| Refusal {
        file: file.to_string(),
        finding,
    };
    let mut warnings = Vec::new();
    if verb.serves()
        && let Some(tls) = &config.extender.tls
    {
        crate::server::tls::rustls_config(tls).map_err(|e| refuse(tls_finding(&e)))?;
    }
    if verb.reads_telemetry() || (verb.live() && config.carbon.prometheus.is_some()) {
        let prom = config.telemetry.prometheus.as_ref().ok_or_else(|| {
            refuse(finding(
                "telemetry.prometheus",
                format!("required by {}", verb.invocation()),
            ))
        })?;
        prometheus("telemetry.prometheus", prom).map_err(refuse)?;
        // Re-read on every query (rotated tokens work): missing now is a warning, not a
        // refusal — queries fail (and decisions fail open) until it appears.
        if let Some(f) = &prom.endpoint.bearer_token_file
            && let Err(e) = std::fs::read(f)
        {
            warnings.push(finding(
                "telemetry.prometheus.bearerTokenFile",
                format!("{f}: {e}; every telemetry query fails until it can be read"),
            ));
        }
    }
    let leases = [
        (
            verb.publishes(config),
            config.ocm.lease.clone(),
            "ocm.lease.namespace",
        ),
        (
            verb.gates(config),
            crate::config::LeaseConfig::from(&config.carbon_window.lease),
            "carbonWindow.lease.namespace",
        ),
    ];
    for (_, lease, path) in leases.iter().filter(|(needed, _, _)| *needed) {
        if crate::lease::namespace(lease).is_none() {
            return Err(refuse(finding(
                *path,
                "not set and no POD_NAMESPACE in the environment (the shipped manifests set it from the pod's namespace)",
            )));
        }
    }
    if verb.gates(config) {
        let s = crate::carbon_window::controller::WindowSettings::of(config);
        if s.zones.is_empty() {
            warnings.push(finding(
                "carbonWindow.zones",
                "empty, and topology.carbonZones names no zone: every gated pod is released at once (no_zone)",
            ));
        }
    }
    if config.carbon.is_live() {
        live_carbon(config).map_err(refuse)?;
    } else if config.carbon.prometheus.is_none() {
        let curves = carbon_curves(config).map_err(refuse)?;
        if verb.live() {
            warnings.extend(carbon_coverage(config, &curves, now));
        }
    }
    warnings.extend(user_regions(config));
    if let Some(model) = &config.power.onnx_model
        && let Err(e) = optimizer::power::OnnxPowerModel::load(model)
    {
        warnings.push(finding(
            "power.onnxModel",
            format!("{e}; decisions use the fitted curves instead"),
        ));
    }
    Ok(warnings)
}

/// The field path of a TLS loading error.
fn tls_finding(e: &crate::server::tls::TlsError) -> Finding {
    use crate::server::tls::TlsError;
    let path = match e {
        TlsError::Read { field, .. } | TlsError::Content { field, .. } => {
            format!("extender.tls.{field}")
        }
        TlsError::Provider(_) => "extender.tls".to_string(),
    };
    // The error names its field already; say it once.
    let text = e.to_string();
    let message = text
        .strip_prefix(&format!("{path}: "))
        .map_or(text.clone(), str::to_string);
    finding(path, message)
}

/// A Prometheus connection as `kepler-client` builds it: the URL, and the files it reads
/// at start.
fn prometheus(at: &str, prom: &PrometheusConfig) -> Result<(), Finding> {
    let e = &prom.endpoint;
    let files = [
        ("caFile", &e.ca_file),
        ("clientCertFile", &e.client_cert_file),
    ];
    for (field, file) in files {
        if let Some(f) = file {
            std::fs::read(f)
                .map_err(|err| finding(format!("{at}.{field}"), format!("{f}: {err}")))?;
        }
    }
    kepler_client::PrometheusSource::new(prom.clone()).map_err(|err| match err {
        kepler_client::TelemetryError::Config { field, message } => {
            finding(format!("{at}.{field}"), message)
        }
        other => finding(at, other.to_string()),
    })?;
    Ok(())
}

/// Every configured carbon file and constant, loaded as `serve` loads them; each failure
/// names its field.
fn carbon_curves(config: &Config) -> Result<CarbonCurves, Finding> {
    let c = &config.carbon;
    for (i, f) in c.forecast_files.iter().enumerate() {
        CarbonCurves::from_gsf_forecast_file(f)
            .map_err(|e| finding(format!("carbon.forecastFiles[{i}]"), e.to_string()))?;
    }
    for (zone, f) in &c.csv_files {
        CarbonCurves::from_csv_file(zone, f)
            .map_err(|e| finding(format!("carbon.csvFiles.{zone}"), e.to_string()))?;
    }
    crate::runtime::curves(c).map_err(|e| finding("carbon", format!("{e:#}")))
}

/// The live carbon provider built as `serve` builds it (credential files readable and not
/// empty, URLs, periods), without calling it; each failure names its field.
fn live_carbon(config: &Config) -> Result<(), Finding> {
    match crate::runtime::live_carbon(&config.carbon, std::sync::Arc::new(Utc::now)) {
        Ok(_) => Ok(()),
        Err(kepler_client::carbon::CarbonError::Config { field, message }) => {
            Err(finding(field, message))
        }
        Err(e) => Err(finding("carbon", e.to_string())),
    }
}

/// Warnings when no configured zone has an intensity `now`: every decision would fail
/// open (`carbon_missing`).
fn carbon_coverage(config: &Config, curves: &CarbonCurves, now: DateTime<Utc>) -> Vec<Finding> {
    let zones: Vec<&str> = curves.zones().collect();
    if zones.is_empty() {
        return vec![finding(
            "carbon",
            "no carbon source configured: every decision fails open (carbon_missing); set electricityMaps, wattTime or carbonAwareSdk (live), prometheus, staticGPerKwh, csvFiles or forecastFiles",
        )];
    }
    let covered = zones.iter().any(|z| curves.intensity_at(z, now).is_ok());
    if covered {
        return Vec::new();
    }
    let c = &config.carbon;
    let only_embedded = c.embedded2020
        && c.forecast_files.is_empty()
        && c.csv_files.is_empty()
        && c.static_g_per_kwh.is_empty();
    let message = if only_embedded {
        format!(
            "embedded2020 is the only carbon source and its curves cover 2020 only: at {} every decision fails open (carbon_missing); add a live source (electricityMaps, wattTime, carbonAwareSdk), prometheus, staticGPerKwh, csvFiles or forecastFiles (embedded2020 is for `serve --demo`, `simulate` and replays)",
            now.format("%Y-%m-%d %H:%M UTC")
        )
    } else {
        format!(
            "no configured zone ({}) has an intensity at {}: every decision fails open (carbon_missing) until a source covers the present",
            zones.join(", "),
            now.format("%Y-%m-%d %H:%M UTC")
        )
    };
    let path = if only_embedded {
        "carbon.embedded2020"
    } else {
        "carbon"
    };
    vec![finding(path, message)]
}

/// Warnings for configured user regions that `topology.latencyMs` does not know (they give
/// no latency term and no SLO).
fn user_regions(config: &Config) -> Vec<Finding> {
    let t = &config.topology;
    let known = t.user_regions();
    let why = if known.is_empty() {
        "is not a user region of topology.latencyMs, which has none: no latency term and no SLO"
            .to_string()
    } else {
        format!(
            "is not a user region of topology.latencyMs (known: {}): no latency term and no SLO",
            known.join(", ")
        )
    };
    let mut out = Vec::new();
    let mut check = |path: String, region: &str| {
        if t.user_region(region).is_none() {
            out.push(finding(path, format!("`{region}` {why}")));
        }
    };
    if let Some(r) = &config.policy.user_region {
        check("policy.userRegion".into(), r);
    }
    for (ns, p) in &config.policy.namespaces {
        if let Some(r) = &p.user_region {
            check(format!("policy.namespaces.{ns}.userRegion"), r);
        }
    }
    for (i, r) in config.ocm.user_regions.iter().enumerate() {
        check(format!("ocm.userRegions[{i}]"), r);
    }
    out
}

/// Loads `path` as `Config::load` does, then [`check`]s it for `verb` now; warnings are
/// logged. The start of every verb that runs from a configuration file.
pub fn load(path: &Path, verb: Verb) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    ready(&config, &path.display().to_string(), verb)?;
    Ok(config)
}

/// [`check`]s an already loaded `config` for `verb` now, logging the warnings.
pub fn ready(config: &Config, file: &str, verb: Verb) -> Result<(), Refusal> {
    for w in check(config, file, verb, Utc::now())? {
        tracing::warn!(field = %w.path, "{file}: {w}");
    }
    Ok(())
}
