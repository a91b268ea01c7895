//! Energy and carbon accounting over time ranges, from Kepler's joule counters.
//!
//! Energy per window comes from Prometheus `increase()` (which handles counter resets);
//! carbon multiplies each window's energy by that window's mean grid intensity and sums,
//! hour by hour — never average energy times average intensity.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::carbon::{CarbonError, CarbonIntensitySource};
use crate::error::TelemetryError;
use crate::prometheus_source::PrometheusSource;
use crate::schema::KeplerSchema;

/// Joules in one kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

/// What to group energy by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One row per cluster (node energy, idle included).
    #[default]
    Cluster,
    /// One row per node (idle included).
    Node,
    /// One row per namespace (pod energy: active only, idle is never attributed).
    Namespace,
    /// One row per pod (active only).
    Pod,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cluster" => Ok(Self::Cluster),
            "node" => Ok(Self::Node),
            "namespace" => Ok(Self::Namespace),
            "pod" => Ok(Self::Pod),
            o => Err(format!(
                "unknown grouping `{o}` (cluster, node, namespace or pod)"
            )),
        }
    }
}

/// Errors of an accounting run.
#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    /// Reading the joule counters failed.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The joule counter has no samples in the range.
    #[error(
        "Kepler metric `{metric}` (schema {schema}) has no samples from {} to {} at {url}: is the period inside the store's history (retention)?",
        from.to_rfc3339(),
        to.to_rfc3339()
    )]
    NoData {
        /// The counter's name.
        metric: String,
        /// The schema it belongs to.
        schema: String,
        /// Range start.
        from: DateTime<Utc>,
        /// Range end.
        to: DateTime<Utc>,
        /// Base URL of the metric store.
        url: String,
    },
    /// The time range is empty or inverted.
    #[error("empty time range: {from} .. {to}")]
    EmptyRange {
        /// Start.
        from: DateTime<Utc>,
        /// End.
        to: DateTime<Utc>,
    },
}

/// Energy (and carbon, when the intensity is known) of one group in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowEnergy {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Energy, kWh (PUE applied).
    pub kwh: f64,
    /// Mean grid intensity over the window, gCO2e/kWh.
    pub g_per_kwh: Option<f64>,
    /// Emissions, gCO2e.
    pub g_co2e: Option<f64>,
}

/// Totals of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupEnergy {
    /// Cluster of the group.
    pub cluster: String,
    /// Group name within the cluster (node, namespace or `namespace/pod`; the cluster
    /// name again for cluster grouping).
    pub group: String,
    /// Energy, kWh.
    pub kwh: f64,
    /// Emissions, gCO2e; `None` when any window's intensity was unknown.
    pub g_co2e: Option<f64>,
    /// Per-window figures.
    pub windows: Vec<WindowEnergy>,
}

/// An accounting run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyReport {
    /// Range start.
    pub from: DateTime<Utc>,
    /// Range end.
    pub to: DateTime<Utc>,
    /// Grouping.
    pub group_by: GroupBy,
    /// Kepler schema read.
    pub schema: KeplerSchema,
    /// Power zone read.
    pub zone: String,
    /// Power usage effectiveness applied to every figure.
    pub pue: f64,
    /// Whether idle power is included (node groupings) or not (pod groupings).
    pub includes_idle: bool,
    /// Per group, sorted by cluster then group.
    pub groups: Vec<GroupEnergy>,
    /// Total energy, kWh.
    pub total_kwh: f64,
    /// Total emissions of the groups whose carbon is known, gCO2e.
    pub total_g_co2e: f64,
    /// Data gaps and unknowns, in words.
    pub gaps: Vec<String>,
}

/// What to account.
#[derive(Debug, Clone)]
pub struct EnergyRequest {
    /// Range start.
    pub from: DateTime<Utc>,
    /// Range end.
    pub to: DateTime<Utc>,
    /// Grouping.
    pub group_by: GroupBy,
    /// Window length, seconds (3600: hour by hour).
    pub step_s: i64,
    /// Power usage effectiveness (1.0 = IT energy only).
    pub pue: f64,
}

/// Accounts energy and carbon from a Prometheus-compatible store.
pub struct Accountant<'a> {
    /// Where the joule counters live.
    pub source: &'a PrometheusSource,
    /// Grid carbon intensity.
    pub carbon: &'a dyn CarbonIntensitySource,
    /// Cluster name → carbon zone.
    pub cluster_zones: &'a BTreeMap<String, String>,
}

impl Accountant<'_> {
    /// Energy and carbon per group over the request's range.
    pub async fn energy(&self, req: &EnergyRequest) -> Result<EnergyReport, AccountingError> {
        if req.to <= req.from || req.step_s <= 0 {
            return Err(AccountingError::EmptyRange {
                from: req.from,
                to: req.to,
            });
        }
        let cfg = self.source.config();
        let client = self.source.client();
        let schema = self.source.detect_schema(req.to).await?;
        let (node_counter, pod_counter) = schema.energy_counters(&cfg.zone);
        let labels = schema.labels(cfg.node_label.as_deref());
        let (counter, group_labels): (_, Vec<&str>) = match req.group_by {
            GroupBy::Cluster => (&node_counter, vec![]),
            GroupBy::Node => (&node_counter, vec![labels.node.as_str()]),
            GroupBy::Namespace => (&pod_counter, vec![labels.namespace]),
            GroupBy::Pod => (&pod_counter, vec![labels.namespace, labels.pod]),
        };
        let mut by = vec![cfg.cluster_label.as_str()];
        by.extend(&group_labels);
        let query = |window_s: i64| {
            format!(
                "sum by ({}) (increase({}{{{}}}[{window_s}s]))",
                by.join(", "),
                counter.metric,
                counter.matchers
            )
        };

        // Windows of step_s from `from`; a shorter last window covers any remainder.
        let span = (req.to - req.from).num_seconds();
        let full = span / req.step_s;
        let rest = span % req.step_s;
        // (cluster, group) -> window end (unix s) -> joules
        let mut joules: BTreeMap<(String, String), BTreeMap<i64, f64>> = BTreeMap::new();
        let key_of = |m: &std::collections::HashMap<String, String>| {
            let cluster = m
                .get(&cfg.cluster_label)
                .cloned()
                .unwrap_or_else(|| cfg.default_cluster.clone());
            let group = if group_labels.is_empty() {
                cluster.clone()
            } else {
                group_labels
                    .iter()
                    .map(|l| m.get(*l).map(String::as_str).unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            (cluster, group)
        };
        if full > 0 {
            let start = req.from + Duration::seconds(req.step_s);
            let end = req.from + Duration::seconds(full * req.step_s);
            for s in client
                .query_range(&query(req.step_s), start, end, req.step_s as f64)
                .await?
            {
                let slot = joules.entry(key_of(s.metric())).or_default();
                for p in s.samples() {
                    if p.value().is_finite() && p.value() >= 0.0 {
                        slot.insert(p.timestamp().round() as i64, p.value());
                    }
                }
            }
        }
        if rest > 0 {
            for s in client.query_instant(&query(rest), req.to).await? {
                let v = s.sample().value();
                if v.is_finite() && v >= 0.0 {
                    joules
                        .entry(key_of(s.metric()))
                        .or_default()
                        .insert(req.to.timestamp(), v);
                }
            }
        }
        if joules.is_empty() {
            if schema == KeplerSchema::V010 {
                let zones = self.source.zones_of(&counter.metric, req.to).await?;
                let zone = cfg.zone.v010_label();
                if !zones.is_empty() && !zones.iter().any(|z| z == zone) {
                    return Err(TelemetryError::ZoneMissing {
                        metric: counter.metric.clone(),
                        zone: zone.to_string(),
                        available: zones,
                        url: client.url().to_string(),
                    }
                    .into());
                }
            }
            return Err(AccountingError::NoData {
                metric: counter.metric.clone(),
                schema: schema.to_string(),
                from: req.from,
                to: req.to,
                url: client.url().to_string(),
            });
        }

        let mut window_ends: Vec<DateTime<Utc>> = (1..=full)
            .map(|k| req.from + Duration::seconds(k * req.step_s))
            .collect();
        if rest > 0 {
            window_ends.push(req.to);
        }
        let mut gaps = Vec::new();
        let mut intensity_cache: BTreeMap<(String, i64), Result<f64, String>> = BTreeMap::new();
        let mut groups = Vec::new();
        for ((cluster, group), by_end) in joules {
            let zone = self.cluster_zones.get(&cluster);
            if zone.is_none() {
                gaps.push(format!(
                    "cluster `{cluster}` has no carbon zone: its emissions are unknown"
                ));
            }
            let mut windows = Vec::new();
            let mut missing = 0;
            let mut prev = req.from;
            for end in &window_ends {
                let start = prev;
                prev = *end;
                let Some(j) = by_end.get(&end.timestamp()) else {
                    missing += 1;
                    continue;
                };
                let kwh = j / JOULES_PER_KWH * req.pue;
                let g_per_kwh = match zone {
                    None => None,
                    Some(z) => {
                        let r = match intensity_cache.get(&(z.clone(), end.timestamp())) {
                            Some(r) => r.clone(),
                            None => {
                                let r = self
                                    .carbon
                                    .mean_over(z, start, *end)
                                    .await
                                    .map_err(|e: CarbonError| e.to_string());
                                intensity_cache.insert((z.clone(), end.timestamp()), r.clone());
                                r
                            }
                        };
                        match r {
                            Ok(v) => Some(v),
                            Err(e) => {
                                gaps.push(format!("{cluster}/{group} {start}..{end}: {e}"));
                                None
                            }
                        }
                    }
                };
                windows.push(WindowEnergy {
                    start,
                    end: *end,
                    kwh,
                    g_per_kwh,
                    g_co2e: g_per_kwh.map(|g| g * kwh),
                });
            }
            if missing > 0 {
                gaps.push(format!(
                    "{cluster}/{group}: no energy data in {missing} of {} windows",
                    window_ends.len()
                ));
            }
            let kwh = windows.iter().map(|w| w.kwh).sum();
            let g_co2e = windows
                .iter()
                .map(|w| w.g_co2e)
                .sum::<Option<f64>>()
                .filter(|_| zone.is_some());
            groups.push(GroupEnergy {
                cluster,
                group,
                kwh,
                g_co2e,
                windows,
            });
        }
        gaps.dedup();
        Ok(EnergyReport {
            from: req.from,
            to: req.to,
            group_by: req.group_by,
            schema,
            zone: cfg.zone.0.clone(),
            pue: req.pue,
            includes_idle: matches!(req.group_by, GroupBy::Cluster | GroupBy::Node),
            total_kwh: groups.iter().map(|g| g.kwh).sum(),
            total_g_co2e: groups.iter().filter_map(|g| g.g_co2e).sum(),
            groups,
            gaps,
        })
    }
}
