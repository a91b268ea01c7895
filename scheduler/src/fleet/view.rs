//! The fleet view: one optimizer `Target` per node, rebuilt in the background from node
//! facts (watch or demo fleet), the latest Kepler snapshot and carbon outlooks. It is
//! immutable once built: the extender's requests only read it (an `ArcSwap` load), and
//! node rebalance plans on one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kepler_client::{FleetSnapshot, NodePower};
use optimizer::{CarbonOutlook, Resources, Target, TargetKind};
use rustc_hash::FxHashMap;

use super::ViewSettings;
use super::requests::PodRequests;
use super::watch_health::WatchFailure;
use crate::config::TopologyConfig;

/// What ecoplace knows about a node from Kubernetes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFact {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Allocatable resources.
    pub allocatable: PodRequests,
    /// Requests of the pods bound to it (phase not Succeeded/Failed).
    pub allocated: PodRequests,
}

/// Why the extender is failing open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOpen {
    /// No telemetry snapshot yet.
    TelemetryMissing,
    /// The snapshot is older than `telemetry.staleAfterSeconds`.
    TelemetryStale,
    /// No carbon intensity for any node's zone.
    CarbonMissing,
    /// The node watch has not synced (names mode).
    NodesNotSynced,
    /// A node or pod watch has been failing for longer than
    /// `kubernetes.watchStaleAfterSeconds`: node facts are stale (names mode).
    NodesStale,
    /// The decision missed the internal deadline.
    Deadline,
    /// The decision failed (power model error, internal error).
    DecisionFailed,
}

impl FailOpen {
    /// Every reason (each is exported at 0 from start).
    pub const ALL: [FailOpen; 7] = [
        Self::TelemetryMissing,
        Self::TelemetryStale,
        Self::CarbonMissing,
        Self::NodesNotSynced,
        Self::NodesStale,
        Self::Deadline,
        Self::DecisionFailed,
    ];

    /// Label value for `ecoplace_fail_open_total{reason}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TelemetryMissing => "telemetry_missing",
            Self::TelemetryStale => "telemetry_stale",
            Self::CarbonMissing => "carbon_missing",
            Self::NodesNotSynced => "nodes_not_synced",
            Self::NodesStale => "nodes_stale",
            Self::Deadline => "deadline",
            Self::DecisionFailed => "decision_failed",
        }
    }
}

/// Inputs to a view other than the nodes: telemetry, carbon and config.
#[derive(Debug, Clone)]
pub struct ViewInputs {
    /// Latest Kepler snapshot, if any.
    pub snapshot: Option<Arc<FleetSnapshot>>,
    /// Carbon outlook per zone.
    pub carbon: HashMap<String, CarbonOutlook>,
    /// Zones of known nodes without an intensity, with the source's error.
    pub carbon_missing: BTreeMap<String, String>,
    /// What the view was built with.
    pub settings: Arc<ViewSettings>,
    /// When the view was built.
    pub built_at: DateTime<Utc>,
}

/// The extender's current picture.
#[derive(Debug, Clone)]
pub struct FleetView {
    /// One target per known node.
    pub targets: Vec<Target>,
    /// Node name → index in `targets` (Fx hash: names are not attacker-chosen keys of a
    /// long-lived map, and lookups are on every request's hot path).
    pub index: FxHashMap<String, usize>,
    /// Requests allocated per node (for `Nodes`-mode requests).
    pub allocated: FxHashMap<String, PodRequests>,
    /// Telemetry, carbon and config the targets were built from.
    pub inputs: ViewInputs,
    /// Why decisions must fail open now, if they must.
    pub fail_open: Option<FailOpen>,
    /// Whether node facts come from a synced source.
    pub nodes_synced: bool,
    /// Watches failing for longer than `kubernetes.watchStaleAfterSeconds` (set by the
    /// view updater; non-empty: names-mode calls fail open, `nodes_stale`).
    pub stale_watches: Vec<WatchFailure>,
    /// Per user region of `topology.latencyMs`, the known nodes whose latency from it is
    /// not configured (they pass with a neutral latency term).
    pub latency_unknown: BTreeMap<String, usize>,
    /// Per node with a fresh measured power and a zone intensity: (node, zone, gCO2e/h now).
    pub carbon_rates: Vec<(String, String, f64)>,
}

impl FleetView {
    /// An empty view that fails open (before the first build).
    pub fn empty(settings: Arc<ViewSettings>, now: DateTime<Utc>) -> Self {
        Self {
            targets: Vec::new(),
            index: FxHashMap::default(),
            allocated: FxHashMap::default(),
            inputs: ViewInputs {
                snapshot: None,
                carbon: HashMap::new(),
                carbon_missing: BTreeMap::new(),
                settings,
                built_at: now,
            },
            fail_open: Some(FailOpen::TelemetryMissing),
            nodes_synced: false,
            stale_watches: Vec::new(),
            latency_unknown: BTreeMap::new(),
            carbon_rates: Vec::new(),
        }
    }

    /// Builds the view from node facts (`None`: the watch has not synced).
    pub fn build(facts: Option<&[NodeFact]>, inputs: ViewInputs) -> Self {
        let nodes_synced = facts.is_some();
        let facts = facts.unwrap_or_default();
        let targets: Vec<Target> = facts.iter().map(|f| target(f, &inputs)).collect();
        let index = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let allocated = facts
            .iter()
            .map(|f| (f.name.clone(), f.allocated))
            .collect();
        let fail_open = fail_open(&inputs, &targets);
        let latency_unknown = inputs
            .settings
            .topology
            .user_regions()
            .into_iter()
            .map(|r| {
                let n = targets
                    .iter()
                    .filter(|t| !t.latency_ms.contains_key(r))
                    .count();
                (r.to_string(), n)
            })
            .collect();
        let carbon_rates = facts
            .iter()
            .filter_map(|f| {
                let zone = carbon_zone(&f.labels, &inputs.settings.topology)?;
                let g_per_kwh = inputs.carbon.get(&zone)?.now_g_per_kwh;
                let watts = measured(f, &inputs)?.total_watts.fresh()?;
                Some((f.name.clone(), zone, watts * g_per_kwh / 1000.0))
            })
            .collect();
        Self {
            targets,
            index,
            allocated,
            inputs,
            fail_open,
            nodes_synced,
            stale_watches: Vec::new(),
            latency_unknown,
            carbon_rates,
        }
    }

    /// Age of the telemetry snapshot at `now`, seconds.
    pub fn telemetry_age_s(&self, now: DateTime<Utc>) -> Option<f64> {
        self.inputs.snapshot.as_ref().map(|s| s.age_s(now))
    }
}

fn fail_open(inputs: &ViewInputs, targets: &[Target]) -> Option<FailOpen> {
    let Some(snapshot) = inputs.snapshot.as_ref() else {
        return Some(FailOpen::TelemetryMissing);
    };
    let age = snapshot.age_s(inputs.built_at);
    if age > inputs.settings.telemetry_stale_after_seconds {
        return Some(FailOpen::TelemetryStale);
    }
    if !targets.is_empty() && inputs.carbon.is_empty() {
        return Some(FailOpen::CarbonMissing);
    }
    None
}

/// The carbon zone of a node: its region (or zone) label mapped through `topology`.
pub fn carbon_zone(labels: &BTreeMap<String, String>, topology: &TopologyConfig) -> Option<String> {
    region_value(labels, topology)
        .map(|v| topology.carbon_zone_of(v))
        .or_else(|| topology.default_carbon_zone.clone())
}

fn region_value<'a>(
    labels: &'a BTreeMap<String, String>,
    topology: &TopologyConfig,
) -> Option<&'a str> {
    labels
        .get(&topology.region_label)
        .or_else(|| labels.get(&topology.zone_label))
        .map(String::as_str)
}

/// The node's power in the snapshot (this cluster's, or any cluster's when
/// `telemetry.cluster` is empty).
fn measured<'a>(fact: &NodeFact, inputs: &'a ViewInputs) -> Option<&'a NodePower> {
    let s = inputs.snapshot.as_ref()?;
    let cluster = &inputs.settings.cluster;
    if cluster.is_empty() {
        s.clusters.values().find_map(|c| c.nodes.get(&fact.name))
    } else {
        s.node(cluster, &fact.name)
    }
}

/// The optimizer target for one node.
pub fn target(fact: &NodeFact, inputs: &ViewInputs) -> Target {
    let config = &inputs.settings;
    let node_type = fact
        .labels
        .get(&config.power.node_type_label)
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let profile = config
        .power
        .node_types
        .get(&node_type)
        .copied()
        .unwrap_or(config.power.default_profile);
    let capacity = Resources::new(
        fact.allocatable.cpu,
        fact.allocatable.memory,
        fact.allocatable.gpu,
    );
    let allocated = Resources::new(
        fact.allocated.cpu,
        fact.allocated.memory,
        fact.allocated.gpu,
    );
    let measured = measured(fact, inputs).and_then(|n| n.cpu_usage_ratio.fresh());
    let utilisation = measured.unwrap_or(if capacity.cpu > 0.0 {
        allocated.cpu / capacity.cpu
    } else {
        0.0
    });
    // Decisions happen at `built_at` for pods expected to run `expectedDurationSeconds`:
    // the mean over that window is all they read, so it is computed here once per node
    // rather than on every request.
    let window =
        chrono::Duration::milliseconds((config.policy.expected_duration_seconds * 1000.0) as i64);
    let carbon = carbon_zone(&fact.labels, &config.topology)
        .and_then(|z| inputs.carbon.get(&z))
        .map(|o| CarbonOutlook::flat(o.mean_over(inputs.built_at, window)))
        .unwrap_or_else(|| mean_outlook(&inputs.carbon, inputs.built_at, window));
    let latency_ms = region_value(&fact.labels, &config.topology)
        .map(|v| config.topology.latency_to(v))
        .unwrap_or_default();
    Target {
        name: fact.name.clone(),
        kind: TargetKind::Node,
        capacity,
        allocated,
        idle_watts: profile.idle_watts,
        max_watts: profile.max_watts,
        utilisation: utilisation.clamp(0.0, 1.0),
        powered_on: true,
        node_type,
        carbon,
        labels: fact.labels.clone(),
        power_cap_watts: profile.power_cap_watts,
        latency_ms,
    }
}

/// A flat outlook at the average of the known zones' window means: nodes in an unknown
/// zone are neither favoured nor penalised.
fn mean_outlook(
    carbon: &HashMap<String, CarbonOutlook>,
    at: DateTime<Utc>,
    window: chrono::Duration,
) -> CarbonOutlook {
    let n = carbon.len().max(1) as f64;
    CarbonOutlook::flat(
        carbon
            .values()
            .map(|c| c.mean_over(at, window))
            .sum::<f64>()
            / n,
    )
}
