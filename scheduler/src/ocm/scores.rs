//! Pure cluster → score mapping: each managed cluster with fresh telemetry becomes an
//! optimizer [`Target`] of kind `Cluster`; [`optimizer::score_targets`] prices one
//! reference replica on every cluster and the 0..=10 scores map to OCM's −100..=100.
//!
//! Mapping: `value = round(20 · s − 100)` where `s` is the optimizer score (0..=10,
//! min–max normalised over the scored clusters), so within one publication the best
//! cluster for an objective gets 100 and the worst −100; equal clusters all get 100.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kepler_client::FleetSnapshot;
use optimizer::{CarbonOutlook, PowerModel, Resources, Target, TargetKind, Weights, Workload};

use super::crd::AddOnPlacementScoreItem;
use crate::config::NodeProfile;

/// Score names (the `ecoplace` one is the combined score Placements usually use).
pub const CARBON: &str = "carbon";
/// Energy score name.
pub const ENERGY: &str = "energy";
/// Combined score name.
pub const COMBINED: &str = "ecoplace";
/// Prefix of the per-user-region latency score names (`latency-<region>`).
pub const LATENCY_PREFIX: &str = "latency-";

/// Below this mean CPU utilisation the measured dynamic power says too little about the
/// slope; the configured node profile gives the cluster's maximum power instead.
const MIN_UTILISATION_FOR_SLOPE: f64 = 0.05;

/// Why a cluster's scores are not refreshed (its previous ones expire).
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    /// No telemetry for the cluster (no snapshot, or no series with its cluster label).
    TelemetryMissing(String),
    /// Telemetry older than `telemetry.staleAfterSeconds`, or some nodes without a fresh value.
    TelemetryStale(String),
    /// No carbon intensity for the cluster's zone.
    CarbonMissing(String),
    /// The ManagedCluster reports no allocatable CPU.
    CapacityUnknown(String),
    /// The cluster cannot run one reference replica (every score infeasible).
    Infeasible(String),
}

impl Skip {
    /// The condition reason (CamelCase).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TelemetryMissing(_) => "TelemetryMissing",
            Self::TelemetryStale(_) => "TelemetryStale",
            Self::CarbonMissing(_) => "CarbonIntensityMissing",
            Self::CapacityUnknown(_) => "CapacityUnknown",
            Self::Infeasible(_) => "Infeasible",
        }
    }

    /// The `result` label of `ecoplace_ocm_score_publish_total`.
    pub fn metric_result(&self) -> &'static str {
        match self {
            Self::TelemetryMissing(_) => "telemetry_missing",
            Self::TelemetryStale(_) => "telemetry_stale",
            Self::CarbonMissing(_) => "carbon_missing",
            Self::CapacityUnknown(_) => "capacity_unknown",
            Self::Infeasible(_) => "infeasible",
        }
    }

    /// The human-readable explanation.
    pub fn message(&self) -> &str {
        match self {
            Self::TelemetryMissing(m)
            | Self::TelemetryStale(m)
            | Self::CarbonMissing(m)
            | Self::CapacityUnknown(m)
            | Self::Infeasible(m) => m,
        }
    }
}

/// A cluster's measured power, from fresh readings only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerFacts {
    /// Nodes measured.
    pub nodes: usize,
    /// Sum of the nodes' total power, watts.
    pub total_watts: f64,
    /// Sum of the nodes' idle power, watts.
    pub idle_watts: f64,
    /// Mean CPU utilisation over the nodes, 0..=1.
    pub utilisation: f64,
}

/// The cluster's power from `snapshot`, or why it cannot be used: only when the snapshot
/// is at most `stale_after_s` old and every node of the cluster has fresh total power,
/// idle power and CPU utilisation.
pub fn cluster_power(
    snapshot: Option<&FleetSnapshot>,
    cluster: &str,
    now: DateTime<Utc>,
    stale_after_s: f64,
) -> Result<PowerFacts, Skip> {
    let Some(snap) = snapshot else {
        return Err(Skip::TelemetryMissing(
            "no telemetry snapshot has been taken yet".into(),
        ));
    };
    let age = snap.age_s(now);
    // A NaN age (a broken clock) is stale too.
    if age.is_nan() || age > stale_after_s {
        return Err(Skip::TelemetryStale(format!(
            "telemetry snapshot is {age:.0} s old (stale after {stale_after_s:.0} s)"
        )));
    }
    let Some(power) = snap.clusters.get(cluster).filter(|c| !c.nodes.is_empty()) else {
        return Err(Skip::TelemetryMissing(format!(
            "no Kepler node series carry cluster `{cluster}` in {}",
            snap.origin
        )));
    };
    let (mut total, mut idle, mut util) = (0.0, 0.0, 0.0);
    let (mut stale, mut missing) = (Vec::new(), Vec::new());
    for (name, n) in &power.nodes {
        let readings = [&n.total_watts, &n.idle_watts, &n.cpu_usage_ratio];
        if readings.iter().any(|r| r.is_missing()) {
            missing.push(name.as_str());
        } else if readings.iter().any(|r| r.fresh().is_none()) {
            stale.push(name.as_str());
        }
        total += n.total_watts.fresh().unwrap_or(0.0);
        idle += n.idle_watts.fresh().unwrap_or(0.0);
        util += n.cpu_usage_ratio.fresh().unwrap_or(0.0);
    }
    if !missing.is_empty() || !stale.is_empty() {
        let list = |v: &[&str]| v.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        return Err(Skip::TelemetryStale(format!(
            "{} of {} nodes lack fresh power or utilisation (missing: {} [{}]; stale: {} [{}])",
            missing.len() + stale.len(),
            power.nodes.len(),
            missing.len(),
            list(&missing),
            stale.len(),
            list(&stale),
        )));
    }
    let nodes = power.nodes.len();
    Ok(PowerFacts {
        nodes,
        total_watts: total,
        idle_watts: idle,
        utilisation: (util / nodes as f64).clamp(0.0, 1.0),
    })
}

/// Everything known about one cluster that can be scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterFacts {
    /// Managed cluster name.
    pub name: String,
    /// Measured power.
    pub power: PowerFacts,
    /// Its carbon zone.
    pub zone: String,
    /// Grid carbon intensity of its zone over the horizon.
    pub carbon: CarbonOutlook,
    /// Allocatable CPU cores and memory bytes (ManagedCluster status).
    pub allocatable: Resources,
    /// Latency from each user region, ms.
    pub latency_ms: BTreeMap<String, f64>,
    /// ManagedCluster labels.
    pub labels: BTreeMap<String, String>,
}

/// How clusters are scored.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Weights of the combined `ecoplace` score.
    pub weights: Weights,
    /// User regions with a `latency-<name>` score: the name as `ocm.userRegions` spells
    /// it, and the region as the clusters' `latency_ms` keys spell it.
    pub user_regions: Vec<(String, String)>,
    /// User region counted in the combined score's latency term, if any.
    pub combined_region: Option<String>,
    /// CPU cores of the reference replica.
    pub reference_cpu_cores: f64,
    /// Expected lifetime of the reference replica, seconds.
    pub duration_s: f64,
    /// Per-node profile used for a cluster's maximum power when utilisation is too low to
    /// extrapolate it from measurements.
    pub node_profile: NodeProfile,
}

/// A cluster as an optimizer target: measured idle power; maximum power extrapolated from
/// measured dynamic power over utilisation, or the node profile's range per node.
pub fn target(f: &ClusterFacts, profile: &NodeProfile) -> Target {
    let p = &f.power;
    let dynamic = p.total_watts - p.idle_watts;
    let max_watts = if p.utilisation >= MIN_UTILISATION_FOR_SLOPE && dynamic > 0.0 {
        p.idle_watts + dynamic / p.utilisation
    } else {
        p.idle_watts + p.nodes as f64 * (profile.max_watts - profile.idle_watts).max(0.0)
    };
    Target {
        name: f.name.clone(),
        kind: TargetKind::Cluster,
        capacity: f.allocatable,
        allocated: Resources::default(),
        idle_watts: p.idle_watts,
        max_watts,
        utilisation: p.utilisation,
        powered_on: true,
        node_type: String::new(),
        carbon: f.carbon.clone(),
        labels: f.labels.clone(),
        power_cap_watts: None,
        latency_ms: f.latency_ms.clone(),
    }
}

/// The scores of one cluster and notes on scores left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Score items, −100..=100.
    pub items: Vec<AddOnPlacementScoreItem>,
    /// Scores not given and why (e.g. unknown latency from a region).
    pub notes: Vec<String>,
}

/// Maps an optimizer score (0..=10) to OCM's −100..=100.
pub fn to_ocm(score: f64) -> i32 {
    if !score.is_finite() {
        return super::crd::SCORE_MIN;
    }
    (20.0 * score - 100.0).round().clamp(-100.0, 100.0) as i32
}

/// Scores every cluster in `facts` against the others; clusters that cannot run one
/// reference replica are skipped with [`Skip::Infeasible`].
pub fn score_clusters(
    facts: &[ClusterFacts],
    options: &ScoreOptions,
    at: DateTime<Utc>,
    power: &dyn PowerModel,
) -> Result<Vec<Result<Scored, Skip>>, optimizer::PowerError> {
    let targets: Vec<Target> = facts
        .iter()
        .map(|f| target(f, &options.node_profile))
        .collect();
    let base = Workload {
        name: "ecoplace-reference-replica".into(),
        requests: Resources {
            cpu: options.reference_cpu_cores,
            memory: 0.0,
            gpu: 0.0,
        },
        replicas: 1,
        expected_duration_s: options.duration_s,
        ..Workload::default()
    };
    let only = |carbon: f64, energy: f64, latency: f64| Weights {
        carbon,
        energy,
        latency,
        migration: 0.0,
    };
    let with_region = |region: Option<&String>| {
        let mut w = base.clone();
        if let Some(r) = region {
            w.latency_slo_ms.insert(r.clone(), optimizer::NO_SLO_MS);
        }
        w
    };
    let mut runs: Vec<(String, Workload, Weights)> = vec![
        (CARBON.into(), base.clone(), only(1.0, 0.0, 0.0)),
        (ENERGY.into(), base.clone(), only(0.0, 1.0, 0.0)),
    ];
    for (name, region) in &options.user_regions {
        runs.push((
            format!("{LATENCY_PREFIX}{name}"),
            with_region(Some(region)),
            only(0.0, 0.0, 1.0),
        ));
    }
    let mut combined_weights = options.weights;
    combined_weights.migration = 0.0;
    runs.push((
        COMBINED.into(),
        with_region(options.combined_region.as_ref()),
        combined_weights,
    ));

    let mut out: Vec<Scored> = facts
        .iter()
        .map(|_| Scored {
            items: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    for (name, workload, weights) in &runs {
        let scores = optimizer::score_targets(workload, &targets, weights, at, power)?;
        // A `latency-<region>` score is about that latency alone: a cluster whose latency
        // from the region is unknown gets none (rather than the neutral term a combined
        // score gives it).
        let latency_only = name.starts_with(LATENCY_PREFIX);
        for ((s, o), t) in scores.iter().zip(out.iter_mut()).zip(&targets) {
            let unknown: Vec<&String> = workload
                .latency_slo_ms
                .keys()
                .filter(|r| !t.latency_ms.contains_key(*r))
                .collect();
            if latency_only && !unknown.is_empty() {
                let regions: Vec<&str> = unknown.iter().map(|r| r.as_str()).collect();
                o.notes.push(format!(
                    "no `{name}` score: latency from {} unknown (topology.latencyMs)",
                    regions.join(", ")
                ));
            } else if s.feasible {
                o.items
                    .push(AddOnPlacementScoreItem::new(name.clone(), to_ocm(s.score)));
            } else {
                let why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
                o.notes
                    .push(format!("no `{name}` score: {}", why.join("; ")));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|s| {
            if s.items.is_empty() {
                Err(Skip::Infeasible(s.notes.join("; ")))
            } else {
                Ok(s)
            }
        })
        .collect())
}

#[cfg(test)]
#[path = "scores_tests.rs"]
mod tests;
