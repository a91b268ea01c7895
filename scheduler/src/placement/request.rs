//! The placement request (`POST /v1/placements`, `POST /v1/rebalance`, `ecoplace place -f`):
//! ecoplace's own camelCase JSON/YAML format, decoded with the failing field's path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::error::{FieldError, PlacementError};
use crate::fleet::quantity;

/// A batch placement request: the clusters to place on and the workloads to place.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementRequest {
    /// When the placement starts (carbon forecasts are read from here); now if absent.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// How much each objective counts: a preset name or explicit weights.
    #[serde(default)]
    pub weights: WeightsSpec,
    /// Solver limits for this request (capped by the server's configuration).
    #[serde(default)]
    pub solver: SolverSpec,
    /// Rebalance only: smallest gain (weighted normalised objective) a move must bring.
    #[serde(default)]
    pub min_gain: Option<f64>,
    /// The managed clusters that can take work.
    pub clusters: Vec<ClusterSpec>,
    /// The workloads to place.
    pub workloads: Vec<WorkloadSpec>,
}

/// Objective weights: a preset (`balanced`, `carbon`, `energy`, `latency`) or explicit values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WeightsSpec {
    /// A preset name.
    Preset(String),
    /// Explicit weights (objectives left out get 0).
    Explicit(ExplicitWeights),
}

impl Default for WeightsSpec {
    fn default() -> Self {
        WeightsSpec::Preset("balanced".into())
    }
}

/// Explicit objective weights, each finite and ≥ 0, not all 0.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplicitWeights {
    /// Weight of emissions.
    pub carbon: f64,
    /// Weight of energy.
    pub energy: f64,
    /// Weight of latency.
    pub latency: f64,
    /// Weight of migration (moving replicas away from their current clusters).
    pub migration: f64,
}

/// Per-request solver limits.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SolverSpec {
    /// Wall-time limit, seconds (at most the server's `placement.timeLimitSeconds`).
    pub time_limit_seconds: Option<f64>,
    /// Relative MIP gap (0.01 = 1 %).
    pub mip_gap: Option<f64>,
    /// Price stacked replicas on each cluster's convex power curve (slower to solve).
    pub convex_power: Option<bool>,
}

/// One managed cluster: capacity, power profile, grid carbon and latency to user regions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// ManagedCluster name.
    pub name: String,
    /// Allocatable resources summed over the cluster's nodes.
    pub capacity: ResourcesSpec,
    /// Resources already requested by work not listed in this request.
    #[serde(default)]
    pub allocated: ResourcesSpec,
    /// Power profile of the whole cluster.
    pub power: PowerSpec,
    /// Grid carbon intensity where the cluster runs.
    pub carbon: CarbonSpec,
    /// Network latency from each user region to the cluster, ms.
    #[serde(default)]
    pub latency_ms: BTreeMap<String, f64>,
    /// Cluster labels (informational; kept in the optimizer's target).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Cluster power: idle and full-load watts summed over its nodes, CPU utilisation now.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PowerSpec {
    /// Power when idle, watts.
    pub idle_watts: f64,
    /// Power at full CPU load, watts.
    pub max_watts: f64,
    /// CPU utilisation now, 0..=1 (default: allocated CPU / capacity).
    #[serde(default)]
    pub utilisation: Option<f64>,
}

/// Grid carbon intensity: now, and optionally a forecast.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CarbonSpec {
    /// Carbon zone (e.g. `DE`), for the response and logs.
    #[serde(default)]
    pub zone: Option<String>,
    /// Intensity now, gCO2e/kWh. May be left out when `zone` is given and the server (or
    /// `ecoplace place --config`) has a carbon source: it is read from there, forecast too.
    #[serde(default)]
    pub g_per_kwh: Option<f64>,
    /// Forecast points, each holding until the next.
    #[serde(default)]
    pub forecast: Vec<ForecastPoint>,
}

/// One forecast step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForecastPoint {
    /// Start of the step.
    pub start: DateTime<Utc>,
    /// Intensity from `start`, gCO2e/kWh.
    pub g_per_kwh: f64,
}

/// Resource amounts: numbers or Kubernetes quantities (`500m`, `8Gi`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesSpec {
    /// CPU cores.
    pub cpu: Quantity,
    /// Memory bytes.
    pub memory: Quantity,
    /// GPUs.
    pub gpu: Quantity,
}

/// One workload: replicas of the same shape, its users' latency SLOs and allowed clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Unique name.
    pub name: String,
    /// Replicas to place (≥ 1).
    pub replicas: u32,
    /// Requests of one replica.
    pub requests: ResourcesSpec,
    /// CPU one replica is expected to use (cores or a quantity such as `1500m`, e.g. its
    /// past mean): power is priced on it; default its CPU request.
    #[serde(default)]
    pub expected_cpu: Option<Quantity>,
    /// Maximum latency per user region, ms (> 0); the regions are its users.
    #[serde(default)]
    pub latency_slo_ms: BTreeMap<String, f64>,
    /// If non-empty, only these clusters may be used.
    #[serde(default)]
    pub allowed_clusters: Vec<String>,
    /// Clusters that must not be used.
    #[serde(default)]
    pub denied_clusters: Vec<String>,
    /// At most this many replicas on one cluster.
    #[serde(default)]
    pub max_per_cluster: Option<u32>,
    /// Exactly this many clusters (OCM `numberOfClusters`).
    #[serde(default)]
    pub number_of_clusters: Option<u32>,
    /// How long it runs, seconds (energy and carbon count over it; default 3600).
    #[serde(default)]
    pub expected_duration_seconds: Option<f64>,
    /// Replicas running now, per cluster (moving them costs migration).
    #[serde(default)]
    pub current: BTreeMap<String, u32>,
    /// A deferrable workload's deadline (RFC 3339): the answer then carries `startAt`, the
    /// start of least forecast carbon on its clusters that still ends by it.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
}

/// A resource amount: a number, or a Kubernetes quantity string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub f64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a Kubernetes quantity such as 500m or 8Gi")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                quantity::parse(v, "")
                    .map(Quantity)
                    .map_err(|e| E::custom(format!("`{v}` is not a quantity ({})", e.reason)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The text format of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (a superset of JSON).
    Yaml,
}

impl PlacementRequest {
    /// Decodes a request; a malformed body is an error naming the field path.
    pub fn decode(body: &[u8], format: Format) -> Result<Self, PlacementError> {
        let field = |path: String, reason: String| {
            // Some deserializers repeat the path at the start of their message: say it once.
            let reason = match reason.strip_prefix(&format!("{path}: ")) {
                Some(rest) => rest.to_string(),
                None => reason,
            };
            let path = if path == "." { String::new() } else { path };
            PlacementError::Malformed(FieldError {
                field: path,
                message: reason,
            })
        };
        match format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let req = serde_path_to_error::deserialize(&mut de)
                    .map_err(|e| field(e.path().to_string(), e.inner().to_string()))?;
                de.end()
                    .map_err(|e| field(String::new(), format!("after the request: {e}")))?;
                Ok(req)
            }
            Format::Yaml => {
                // serde-saphyr, not serde_yaml: its budgets (nesting depth 64, events,
                // aliases) bound the work a hostile body can cause; serde_yaml took 34 s of
                // CPU (debug build) on 100 kB of nested flow sequences.
                let mut options = serde_saphyr::Options::default();
                options.with_snippet = false;
                let mut failed = None;
                let decoded =
                    serde_saphyr::with_deserializer_from_slice_with_options(body, options, |de| {
                        match serde_path_to_error::deserialize(de) {
                            Ok(req) => Ok(Some(req)),
                            Err(e) => {
                                failed = Some(field(e.path().to_string(), e.inner().to_string()));
                                Ok(None)
                            }
                        }
                    });
                match (failed, decoded) {
                    (Some(e), _) => Err(e),
                    (None, Ok(Some(req))) => Ok(req),
                    (None, Ok(None)) => Err(field(String::new(), "no request".into())),
                    (None, Err(e)) => Err(field(String::new(), e.to_string())),
                }
            }
        }
    }
}
