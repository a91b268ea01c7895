//! `ecoplace.yaml`: the service configuration. Unknown fields are errors, and every error
//! names the field path (`policy.namespaces.batch.objective`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod reference;
mod topology;

pub use topology::TopologyConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The extender's HTTP server.
    pub extender: ExtenderConfig,
    /// Where telemetry comes from.
    pub telemetry: TelemetryConfig,
    /// Carbon zones and latency, keyed by node topology labels.
    pub topology: TopologyConfig,
    /// Node power profiles by instance type.
    pub power: PowerConfig,
    /// Pod policy defaults and per-namespace overrides.
    pub policy: PolicyConfig,
    /// Where grid carbon intensity comes from.
    pub carbon: CarbonConfig,
    /// Kubernetes Events written on pods.
    pub events: EventsConfig,
    /// Open Cluster Management: the `AddOnPlacementScore` publisher on the hub.
    pub ocm: crate::ocm::OcmConfig,
    /// Batch placement on managed clusters (`/v1/placements`, `/v1/rebalance`).
    pub placement: PlacementConfig,
    /// Node-level rebalance (`ecoplace rebalance --nodes`): which pods may be evicted, how fast.
    pub rebalance: NodeRebalanceConfig,
    /// The Kubernetes watches behind the extender's node facts.
    pub kubernetes: KubernetesConfig,
}

/// Node-level rebalance: evictions through the Eviction API, capped and paced.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeRebalanceConfig {
    /// Most pods one `--execute` run evicts.
    pub max_evictions: u32,
    /// Time between two evictions, seconds.
    pub eviction_interval_seconds: f64,
    /// Namespaces whose pods are never moved.
    pub excluded_namespaces: Vec<String>,
    /// Also move pods with `emptyDir` or `hostPath` volumes (their local data is lost).
    pub evict_local_storage_pods: bool,
}

impl Default for NodeRebalanceConfig {
    fn default() -> Self {
        Self {
            max_evictions: 5,
            eviction_interval_seconds: 30.0,
            excluded_namespaces: vec!["kube-system".into()],
            evict_local_storage_pods: false,
        }
    }
}

/// The Node and Pod watches that feed the extender's node facts (names mode).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesConfig {
    /// A watch failing (errors, no recovery) for longer than this makes names-mode calls
    /// fail open (`nodes_stale`) until it recovers, seconds; watches that merely end and
    /// are re-established never count.
    pub watch_stale_after_seconds: f64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            watch_stale_after_seconds: 30.0,
        }
    }
}

/// Batch placement and rebalance on managed clusters: solver limits and the move threshold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementConfig {
    /// Solver wall-time limit per request, seconds (a request may ask for less, not more).
    pub time_limit_seconds: f64,
    /// Relative MIP gap at which the solver stops, (plan − bound) / plan as in HiGHS (0.01 = 1 %).
    pub mip_gap: f64,
    /// Rebalance: smallest weighted normalised objective gain a move must bring.
    pub min_gain: f64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            time_limit_seconds: 5.0,
            mip_gap: 0.01,
            min_gain: 0.05,
        }
    }
}

/// Kubernetes Events on the pods ecoplace decides for (events.k8s.io/v1), rate-limited.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EventsConfig {
    /// Write events at all (`EcoplaceAnnotationIgnored` warnings).
    pub enabled: bool,
    /// Also write one `EcoplacePreferred` event per scheduled pod saying why.
    pub explain: bool,
    /// Minimum time between two events of the same reason on the same pod, seconds.
    pub min_interval_seconds: f64,
    /// Overall cap on events written, per second.
    pub max_per_second: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            explain: false,
            min_interval_seconds: 300.0,
            max_per_second: 10.0,
        }
    }
}

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

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtenderConfig {
    /// Listen address.
    pub listen: String,
    /// URL prefix of the verbs (`{prefix}/filter`, `{prefix}/prioritize`).
    pub prefix: String,
    /// Internal deadline per request, ms (below kube-scheduler's httpTimeout).
    pub deadline_ms: u64,
    /// Largest request body accepted, bytes (full NodeLists at 5 000 nodes are tens of MB).
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate and key, optionally requiring client certificates.
    pub tls: Option<TlsConfig>,
    /// Also serve `/healthz`, `/readyz` and `/metrics` (not the verbs) over plain HTTP on
    /// this address, e.g. `0.0.0.0:8081`: kubelet probes and Prometheus cannot present a
    /// client certificate when `tls.clientCaFile` is set.
    pub probes_listen: Option<String>,
}

impl Default for ExtenderConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8888".into(),
            prefix: "/scheduler".into(),
            deadline_ms: 250,
            max_body_bytes: 64 << 20,
            tls: None,
            probes_listen: None,
        }
    }
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) for client certificates: when set, every client must present a
    /// certificate chained to it (mutual TLS, kube-scheduler's `tlsConfig.certFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of these files: changed files that load replace the served
    /// ones without a restart (a set that does not load is logged, the current one kept);
    /// 0: read at start only.
    #[serde(default = "default_tls_reload_seconds")]
    pub reload_seconds: f64,
}

fn default_tls_reload_seconds() -> f64 {
    60.0
}

/// Telemetry settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelemetryConfig {
    /// Prometheus or Thanos Query connection and Kepler schema settings (required unless
    /// `ecoplace serve --demo`).
    pub prometheus: Option<kepler_client::PrometheusConfig>,
    /// The Kepler metrics' cluster label value for this cluster (multi-cluster Thanos);
    /// empty: the single cluster Prometheus reports.
    pub cluster: String,
    /// How often telemetry is refreshed, seconds.
    pub refresh_seconds: f64,
    /// Telemetry older than this makes the extender fail open, seconds.
    pub stale_after_seconds: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            prometheus: None,
            cluster: String::new(),
            refresh_seconds: 30.0,
            stale_after_seconds: 300.0,
        }
    }
}

/// Node power profiles.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PowerConfig {
    /// Label naming a node's type.
    pub node_type_label: String,
    /// Profile per node type.
    pub node_types: BTreeMap<String, NodeProfile>,
    /// Profile for node types not listed in `nodeTypes`.
    pub default_profile: NodeProfile,
    /// ONNX power model; the fitted-curve model is used when absent or failing.
    pub onnx_model: Option<PathBuf>,
}

impl Default for PowerConfig {
    fn default() -> Self {
        Self {
            node_type_label: "node.kubernetes.io/instance-type".into(),
            node_types: BTreeMap::new(),
            default_profile: NodeProfile::default(),
            onnx_model: None,
        }
    }
}

/// A node type's power.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeProfile {
    /// Power at 0 % CPU, watts.
    pub idle_watts: f64,
    /// Power at 100 % CPU, watts.
    pub max_watts: f64,
    /// Hard power cap, watts: nodes whose predicted power would exceed it fail filter.
    pub power_cap_watts: Option<f64>,
}

impl Default for NodeProfile {
    fn default() -> Self {
        Self {
            idle_watts: 100.0,
            max_watts: 300.0,
            power_cap_watts: None,
        }
    }
}

/// Pod policy defaults.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// Default weights preset.
    pub objective: String,
    /// Default user region for latency SLOs.
    pub user_region: Option<String>,
    /// Default latency SLO, ms.
    pub max_latency_ms: Option<f64>,
    /// Expected pod lifetime used for energy and wake cost, seconds.
    pub expected_duration_seconds: f64,
    /// Hard: nodes with less allocatable memory fail, bytes.
    pub min_memory_bytes: Option<f64>,
    /// Hard: labels nodes must carry.
    pub required_labels: BTreeMap<String, String>,
    /// Overrides per namespace.
    pub namespaces: BTreeMap<String, NamespacePolicy>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            objective: "balanced".into(),
            user_region: None,
            max_latency_ms: None,
            expected_duration_seconds: 3600.0,
            min_memory_bytes: None,
            required_labels: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

/// A namespace's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// Weights preset.
    pub objective: Option<String>,
    /// User region.
    pub user_region: Option<String>,
    /// Latency SLO, ms.
    pub max_latency_ms: Option<f64>,
    /// Leave this namespace's pods alone.
    pub skip: Option<bool>,
    /// Minimum allocatable memory, bytes.
    pub min_memory_bytes: Option<f64>,
    /// Extra required node labels.
    pub required_labels: BTreeMap<String, String>,
}

/// An invalid configuration, with the field path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// File.
        file: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// A field is wrong.
    #[error("{file}: {path}: {reason}")]
    Field {
        /// File.
        file: String,
        /// Field path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads and checks a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            // serde_yaml's message may start with the same path: say it once.
            let reason = e.inner().to_string();
            let reason = match reason.strip_prefix(&format!("{path}: ")) {
                Some(rest) => rest.to_string(),
                None => reason,
            };
            ConfigError::Field {
                file: file.to_string(),
                path,
                reason,
            }
        })?;
        config
            .check()
            .map_err(|(path, reason)| ConfigError::Field {
                file: file.to_string(),
                path,
                reason,
            })?;
        Ok(config)
    }

    /// Semantic checks serde cannot express; `(field path, reason)`.
    fn check(&self) -> Result<(), (String, String)> {
        let field = |p: &str, r: String| Err((p.to_string(), r));
        if !self.extender.prefix.starts_with('/') || self.extender.prefix.ends_with('/') {
            return field(
                "extender.prefix",
                format!("`{}` must start and not end with /", self.extender.prefix),
            );
        }
        check_listen("extender.listen", &self.extender.listen)?;
        if let Some(probes) = &self.extender.probes_listen {
            check_listen("extender.probesListen", probes)?;
        }
        if !(1..MAX_DEADLINE_MS).contains(&self.extender.deadline_ms) {
            return field(
                "extender.deadlineMs",
                format!(
                    "{} must be in 1..{MAX_DEADLINE_MS} ms (kube-scheduler waits at most its httpTimeout)",
                    self.extender.deadline_ms
                ),
            );
        }
        if let Some(tls) = &self.extender.tls
            && !(tls.reload_seconds.is_finite()
                && (0.0..=MAX_TLS_RELOAD_S).contains(&tls.reload_seconds))
        {
            return field(
                "extender.tls.reloadSeconds",
                format!("must be in 0..={MAX_TLS_RELOAD_S} (0: no reload)"),
            );
        }
        if let Some(Err((f, r))) = self.telemetry.prometheus.as_ref().map(|p| p.check()) {
            return field(&format!("telemetry.prometheus.{f}"), r.into());
        }
        if let Some(Err((f, r))) = self.carbon.prometheus.as_ref().map(|p| p.check()) {
            return field(&format!("carbon.prometheus.{f}"), r.into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        // Periods become `Duration`s: bounded, so that no value can overflow one.
        let period = |v: f64| v.is_finite() && v > 0.0 && v <= MAX_PERIOD_S;
        if !period(self.telemetry.refresh_seconds) {
            return field(
                "telemetry.refreshSeconds",
                format!("must be positive and at most {MAX_PERIOD_S} (a day)"),
            );
        }
        if !positive(self.telemetry.stale_after_seconds) {
            return field("telemetry.staleAfterSeconds", "must be positive".into());
        }
        if self.telemetry.stale_after_seconds < self.telemetry.refresh_seconds {
            return field(
                "telemetry.staleAfterSeconds",
                format!(
                    "{} is below telemetry.refreshSeconds ({}): every snapshot would turn stale before the next refresh and decisions fail open (telemetry_stale)",
                    self.telemetry.stale_after_seconds, self.telemetry.refresh_seconds
                ),
            );
        }
        if !positive(self.kubernetes.watch_stale_after_seconds) {
            return field(
                "kubernetes.watchStaleAfterSeconds",
                "must be positive".into(),
            );
        }
        let pl = &self.placement;
        if !positive(pl.time_limit_seconds) {
            return field("placement.timeLimitSeconds", "must be positive".into());
        }
        if !(pl.mip_gap.is_finite() && (0.0..1.0).contains(&pl.mip_gap)) {
            return field("placement.mipGap", "must be in 0..1".into());
        }
        if !(pl.min_gain.is_finite() && pl.min_gain >= 0.0) {
            return field("placement.minGain", "must be a finite number ≥ 0".into());
        }
        let rb = &self.rebalance;
        if !(0.0..=MAX_PERIOD_S).contains(&rb.eviction_interval_seconds) {
            return field(
                "rebalance.evictionIntervalSeconds",
                format!("must be in 0..={MAX_PERIOD_S} (a day)"),
            );
        }
        if !positive(self.policy.expected_duration_seconds) {
            return field("policy.expectedDurationSeconds", "must be positive".into());
        }
        let ev = &self.events;
        if !(ev.min_interval_seconds.is_finite()
            && (0.0..=MAX_EVENT_INTERVAL_S).contains(&ev.min_interval_seconds))
        {
            return field(
                "events.minIntervalSeconds",
                format!(
                    "{} is not a number of seconds in 0..={MAX_EVENT_INTERVAL_S}",
                    ev.min_interval_seconds
                ),
            );
        }
        if !(ev.max_per_second.is_finite() && ev.max_per_second >= MIN_EVENT_RATE) {
            return field(
                "events.maxPerSecond",
                format!(
                    "{} must be a rate of at least {MIN_EVENT_RATE} per second",
                    ev.max_per_second
                ),
            );
        }
        if let Err((f, r)) = self.ocm.check() {
            return field(&format!("ocm.{f}"), r);
        }
        check_preset("policy.objective", &self.policy.objective)?;
        for (ns, p) in &self.policy.namespaces {
            if let Some(o) = &p.objective {
                check_preset(&format!("policy.namespaces.{ns}.objective"), o)?;
            }
        }
        let profiles = std::iter::once((
            "power.defaultProfile".to_string(),
            &self.power.default_profile,
        ))
        .chain(
            self.power
                .node_types
                .iter()
                .map(|(t, p)| (format!("power.nodeTypes.{t}"), p)),
        );
        for (path, p) in profiles {
            if !(p.idle_watts.is_finite() && p.idle_watts >= 0.0 && p.max_watts > p.idle_watts) {
                return field(
                    &path,
                    format!(
                        "need 0 ≤ idleWatts < maxWatts, got {} and {}",
                        p.idle_watts, p.max_watts
                    ),
                );
            }
        }
        let c = &self.carbon;
        if c.prometheus.is_some()
            && (c.embedded2020
                || !c.forecast_files.is_empty()
                || !c.csv_files.is_empty()
                || !c.static_g_per_kwh.is_empty())
        {
            return field(
                "carbon.prometheus",
                "cannot be combined with embedded2020, forecastFiles, csvFiles or staticGPerKwh"
                    .into(),
            );
        }
        if c.prometheus.is_some() && self.telemetry.prometheus.is_none() {
            return field(
                "carbon.prometheus",
                "needs telemetry.prometheus for the connection".into(),
            );
        }
        for (zone, g) in &c.static_g_per_kwh {
            if !(g.is_finite() && *g >= 0.0) {
                return field(
                    &format!("carbon.staticGPerKwh.{zone}"),
                    format!("{g} is not an intensity in gCO2e/kWh"),
                );
            }
        }
        if let Err((f, r)) = self.topology.check() {
            return field(&format!("topology.{f}"), r);
        }
        Ok(())
    }
}

/// `extender.deadlineMs` must be below this: an extender deadline of a second or more
/// would hold kube-scheduler's scheduling cycle for every pod.
const MAX_DEADLINE_MS: u64 = 1000;

/// Longest `extender.tls.reloadSeconds`: a day.
const MAX_TLS_RELOAD_S: f64 = 86_400.0;

/// Longest period or interval accepted, seconds (a day).
pub const MAX_PERIOD_S: f64 = 86_400.0;
/// Longest `events.minIntervalSeconds` accepted (a week).
const MAX_EVENT_INTERVAL_S: f64 = 7.0 * 86_400.0;
/// Slowest `events.maxPerSecond` accepted (one event every 1 000 s).
const MIN_EVENT_RATE: f64 = 0.001;

/// A listen address must be `IP:PORT` (what the server binds).
fn check_listen(path: &str, addr: &str) -> Result<(), (String, String)> {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| {
            (
                path.to_string(),
                format!(
                    "`{addr}` is not an IP address with a port, e.g. 0.0.0.0:8888 or [::]:8888"
                ),
            )
        })
}

fn check_preset(path: &str, name: &str) -> Result<(), (String, String)> {
    optimizer::Weights::preset(name)
        .map(|_| ())
        .map_err(|e| (path.to_string(), e.to_string()))
}

#[cfg(test)]
mod tests;
