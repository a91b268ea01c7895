//! Node-level rebalance (`ecoplace rebalance --nodes`): re-solve where the running pods of a
//! cluster should be, with migration priced, and evict the pods whose move is worth it.
//!
//! The plan reads the Nodes and Pods from the apiserver, a fresh Kepler snapshot and the
//! carbon outlook, builds the same per-node targets as the extender, groups movable pods
//! by controller ([`pods`]) and lists the moves with [`crate::placement::rebalance::moves`].
//! Carrying a move out means evicting pods from the node it leaves ([`evict`]): the
//! Eviction API honours PodDisruptionBudgets, and kube-scheduler (with the ecoplace
//! extender) places the replacements. It may import `config`, `fleet`, `placement` and
//! `shutdown`.

pub mod evict;
pub mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, Pod};
use kepler_client::TelemetrySource;
use kepler_client::carbon::CarbonIntensitySource;
use optimizer::{PlanError, PowerModel, Resources, SolveOptions, Weights, Workload};
use serde::Serialize;

use crate::config::Config;
use crate::fleet::{FleetView, ViewSettings, node_facts, view_inputs};
use crate::placement::rebalance::{RebalanceResponse, moves};
use evict::{Eviction, Outcome};
use pods::Pinned;

/// What node-level moves mean.
pub const ADVISORY: &str = "Node-level moves are made by evicting pods (Eviction API, so PodDisruptionBudgets hold) from the nodes they leave; kube-scheduler places the replacements, steered by the ecoplace extender towards the nodes this plan chose, but free to choose otherwise.";

/// The answer of a node-level rebalance: the moves, the pods left alone and the evictions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRebalance {
    /// Moves, gains and solver report (`mode` is `dry-run` or `execute`).
    #[serde(flatten)]
    pub plan: RebalanceResponse,
    /// The objective preset the plan used (`policy.objective`).
    pub objective: String,
    /// Pods that are never moved, and why.
    pub pinned: Vec<Pinned>,
    /// The evictions that carry out the advised moves, in order, with their outcomes.
    pub evictions: Vec<Eviction>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum NodeRebalanceError {
    /// Telemetry or carbon intensity is missing or stale: no moves from old data.
    #[error("no moves planned: {0}")]
    NoData(String),
    /// The apiserver could not be read.
    #[error("reading {what} from the apiserver: {source}")]
    Kubernetes {
        /// Nodes or pods.
        what: &'static str,
        /// The client error.
        source: kube::Error,
    },
    /// The configuration cannot be used (the field path is in the message).
    #[error("{0}")]
    Config(String),
    /// The solver failed or found the current state infeasible.
    #[error("solving the node placement: {0}")]
    Solve(String),
}

/// Reads the cluster and telemetry at `now` and plans the moves (every eviction `Planned`).
pub async fn plan_live(
    client: &kube::Client,
    telemetry: &dyn TelemetrySource,
    carbon: &dyn CarbonIntensitySource,
    config: &Arc<Config>,
    power: &dyn PowerModel,
    min_gain: f64,
    now: DateTime<Utc>,
) -> Result<NodeRebalance, NodeRebalanceError> {
    let nodes = evict::list_all::<Node>(client, None)
        .await
        .map_err(|source| NodeRebalanceError::Kubernetes {
            what: "nodes",
            source,
        })?;
    let pods = evict::list_all::<Pod>(client, Some(ACTIVE_PODS))
        .await
        .map_err(|source| NodeRebalanceError::Kubernetes {
            what: "pods",
            source,
        })?;
    let snapshot = telemetry
        .snapshot(now)
        .await
        .map_err(|e| NodeRebalanceError::NoData(format!("telemetry: {e}")))?;
    let facts = node_facts(&refs(&nodes), &refs(&pods));
    let settings = Arc::new(ViewSettings::of(config));
    let inputs = view_inputs(&facts, Some(Arc::new(snapshot)), carbon, &settings, now).await;
    plan(
        &nodes,
        &pods,
        FleetView::build(Some(&facts), inputs),
        config,
        power,
        min_gain,
    )
}

/// The field selector of the pods that hold resources on their nodes.
pub const ACTIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

fn refs<T>(items: &[T]) -> Vec<&T> {
    items.iter().collect()
}

/// Plans the moves of the pods in `pods` over the nodes of `view` (built from `nodes` and
/// `pods` at the plan's instant, with `config`). Pure: no I/O, the time is the view's.
pub fn plan(
    nodes: &[Node],
    pods: &[Pod],
    view: FleetView,
    config: &Config,
    power: &dyn PowerModel,
    min_gain: f64,
) -> Result<NodeRebalance, NodeRebalanceError> {
    if let Some(reason) = view.fail_open {
        return Err(NodeRebalanceError::NoData(format!(
            "the node view is not usable ({}): ecoplace plans no moves from missing or stale data",
            reason.as_str()
        )));
    }
    let at = view.inputs.built_at;
    let (groups, pinned) = pods::classify(pods, nodes, config);
    let mut targets = view.targets;
    let index: BTreeMap<&str, usize> = view
        .index
        .iter()
        .map(|(name, &i)| (name.as_str(), i))
        .collect();
    let mut workloads = Vec::with_capacity(groups.len());
    for g in &groups {
        let requests = Resources::new(g.requests.cpu, g.requests.memory, g.requests.gpu);
        let mut current: BTreeMap<String, u32> = BTreeMap::new();
        for p in &g.pods {
            *current.entry(p.node.clone()).or_default() += 1;
            // The group's pods are what the plan places: their requests leave `allocated`.
            if let Some(&t) = index.get(p.node.as_str()) {
                let a = targets[t].allocated;
                targets[t].allocated = Resources::new(
                    (a.cpu - requests.cpu).max(0.0),
                    (a.memory - requests.memory).max(0.0),
                    (a.gpu - requests.gpu).max(0.0),
                );
            }
        }
        workloads.push(Workload {
            name: g.key.clone(),
            requests,
            replicas: u32::try_from(g.pods.len()).unwrap_or(u32::MAX),
            expected_duration_s: config.policy.expected_duration_seconds,
            latency_slo_ms: g.latency_slo_ms.clone(),
            allowed_targets: g.allowed_nodes.clone(),
            current,
            ..Workload::default()
        });
    }
    let weights = Weights::preset(&config.policy.objective)
        .map_err(|e| NodeRebalanceError::Config(format!("policy.objective: {e}")))?;
    let options = SolveOptions {
        time_limit_s: config.placement.time_limit_seconds,
        mip_gap: config.placement.mip_gap,
        ..SolveOptions::default()
    };
    let solved = optimizer::plan(&workloads, &targets, &weights, at, power, &options).map_err(
        |e| match e {
            PlanError::Infeasible(report) => NodeRebalanceError::Solve(format!(
                "the running pods do not fit the nodes as modelled: {report}"
            )),
            other => NodeRebalanceError::Solve(other.to_string()),
        },
    )?;
    let mut response = moves(&solved, &workloads, &targets, power, min_gain, at)
        .map_err(|e| NodeRebalanceError::Solve(e.to_string()))?;
    response.advisory = ADVISORY;
    let evictions = evictions_for(&response, &groups);
    Ok(NodeRebalance {
        plan: response,
        objective: config.policy.objective.clone(),
        pinned,
        evictions,
    })
}

/// The evictions carrying out the advised moves, largest gain first: for each transfer of
/// k replicas off a node, k of the group's pods on that node (by name).
fn evictions_for(response: &RebalanceResponse, groups: &[pods::PodGroup]) -> Vec<Eviction> {
    let by_key: BTreeMap<&str, &pods::PodGroup> =
        groups.iter().map(|g| (g.key.as_str(), g)).collect();
    let mut out = Vec::new();
    for mv in &response.moves {
        let Some(group) = by_key.get(mv.workload.as_str()) else {
            continue;
        };
        let mut taken = vec![false; group.pods.len()];
        for tr in &mv.transfers {
            let mut left = tr.replicas;
            for (i, p) in group.pods.iter().enumerate() {
                if left == 0 {
                    break;
                }
                if !taken[i] && p.node == tr.from {
                    taken[i] = true;
                    left -= 1;
                    out.push(Eviction {
                        pod: p.clone(),
                        workload: group.key.clone(),
                        towards: tr.to.clone(),
                        outcome: Outcome::Planned,
                        message: None,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
