//! From a validated request to optimizer inputs (targets of kind Cluster, workloads), and
//! from optimizer infeasibility reports back to the workloads that cannot be placed.

use std::collections::BTreeMap;

use optimizer::cost::{self, Infeasibility};
use optimizer::{
    CarbonOutlook, InfeasibleReport, Resources, Target, TargetKind, TargetReasons, Workload,
};

use super::error::{EliminatedCluster, Unplaceable};
use super::request::{ClusterSpec, PlacementRequest, ResourcesSpec, WorkloadSpec};

/// The power-curve key of every cluster: no fitted curve has it, so each cluster is priced
/// with the nameplate curve through its own idle and maximum watts.
pub const CLUSTER_NODE_TYPE: &str = "managed-cluster";

/// Default expected duration of a workload, seconds.
pub const DEFAULT_DURATION_S: f64 = 3600.0;

fn resources(r: &ResourcesSpec) -> Resources {
    Resources::new(r.cpu.0, r.memory.0, r.gpu.0)
}

/// One cluster as an optimizer target (always powered on: a cluster is never woken).
pub fn target(c: &ClusterSpec) -> Target {
    let capacity = resources(&c.capacity);
    let allocated = resources(&c.allocated);
    let utilisation = c.power.utilisation.unwrap_or(if capacity.cpu > 0.0 {
        (allocated.cpu / capacity.cpu).clamp(0.0, 1.0)
    } else {
        0.0
    });
    let mut labels = c.labels.clone();
    if let Some(zone) = &c.carbon.zone {
        labels.insert("ecoplace.io/carbon-zone".into(), zone.clone());
    }
    Target {
        name: c.name.clone(),
        kind: TargetKind::Cluster,
        capacity,
        allocated,
        idle_watts: c.power.idle_watts,
        max_watts: c.power.max_watts,
        utilisation,
        powered_on: true,
        node_type: CLUSTER_NODE_TYPE.into(),
        carbon: CarbonOutlook {
            // Validation refused a request without it.
            now_g_per_kwh: c.carbon.g_per_kwh.unwrap_or(f64::NAN),
            forecast: c
                .carbon
                .forecast
                .iter()
                .map(|p| (p.start, p.g_per_kwh))
                .collect(),
        },
        labels,
        power_cap_watts: None,
        latency_ms: c.latency_ms.clone(),
    }
}

/// One workload as an optimizer workload.
pub fn workload(w: &WorkloadSpec) -> Workload {
    Workload {
        name: w.name.clone(),
        requests: resources(&w.requests),
        expected_cpu_cores: w.expected_cpu.map(|q| q.0),
        replicas: w.replicas,
        expected_duration_s: w.expected_duration_seconds.unwrap_or(DEFAULT_DURATION_S),
        latency_slo_ms: w.latency_slo_ms.clone(),
        allowed_targets: w.allowed_clusters.clone(),
        denied_targets: w.denied_clusters.clone(),
        affinity_group: None,
        anti_affinity_group: None,
        max_per_target: w.max_per_cluster,
        number_of_targets: w.number_of_clusters,
        current: w.current.clone(),
    }
}

/// The optimizer's inputs for `req`, every user region in one spelling: region names match
/// case-insensitively, and each takes the spelling of its first appearance in a cluster's
/// `latencyMs`.
pub fn inputs(req: &PlacementRequest) -> (Vec<Workload>, Vec<Target>) {
    let spellings = region_spellings(req);
    let spell = |map: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        map.iter()
            .map(|(r, &v)| (spelling(&spellings, r).to_string(), v))
            .collect()
    };
    let workloads = req
        .workloads
        .iter()
        .map(|w| Workload {
            latency_slo_ms: spell(&w.latency_slo_ms),
            ..workload(w)
        })
        .collect();
    let targets = req
        .clusters
        .iter()
        .map(|c| Target {
            latency_ms: spell(&c.latency_ms),
            ..target(c)
        })
        .collect();
    (workloads, targets)
}

/// Every user region of the clusters' `latencyMs`, in its first spelling.
pub fn region_spellings(req: &PlacementRequest) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in &req.clusters {
        for r in c.latency_ms.keys() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
                out.push(r);
            }
        }
    }
    out
}

/// The spelling of `region` among `spellings` (case-insensitive), or itself.
pub fn spelling<'a>(spellings: &[&'a str], region: &'a str) -> &'a str {
    spellings
        .iter()
        .find(|s| s.eq_ignore_ascii_case(region))
        .copied()
        .unwrap_or(region)
}

fn eliminated(target: &str, details: Vec<Infeasibility>) -> EliminatedCluster {
    EliminatedCluster {
        cluster: target.to_string(),
        reasons: details.iter().map(ToString::to_string).collect(),
        details,
    }
}

/// Every workload that cannot be placed even alone on the empty fleet (no cluster passes
/// its rules, too little room over the clusters that do, too few clusters for
/// `numberOfClusters`), with the reasons; empty when each fits alone.
pub fn unplaceable(workloads: &[Workload], targets: &[Target]) -> Vec<Unplaceable> {
    let mut out = Vec::new();
    for w in workloads {
        let checks: Vec<(&Target, Vec<Infeasibility>)> = targets
            .iter()
            .map(|t| (t, cost::check_pair(w, t, 0.0)))
            .collect();
        let feasible: Vec<&Target> = checks
            .iter()
            .filter(|(_, why)| why.is_empty())
            .map(|(t, _)| *t)
            .collect();
        let reason = if feasible.is_empty() {
            Some(no_cluster(w, &checks))
        } else {
            let per = w.max_per_target.unwrap_or(u32::MAX);
            let room: u64 = feasible
                .iter()
                .map(|t| u64::from(t.free().fits(&w.requests).min(per)))
                .sum();
            let names = feasible
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if room < u64::from(w.replicas) {
                Some(format!(
                    "workload {} needs {} replicas but the clusters it may use ({names}) have room for {room}",
                    w.name, w.replicas
                ))
            } else {
                match w.number_of_targets {
                    Some(n) if (n as usize) > feasible.len() => Some(format!(
                        "workload {} must run on {n} clusters but only {} may take it ({names})",
                        w.name,
                        feasible.len()
                    )),
                    _ => None,
                }
            }
        };
        if let Some(reason) = reason {
            out.push(Unplaceable {
                workload: Some(w.name.clone()),
                reason,
                eliminated: checks
                    .into_iter()
                    .filter(|(_, why)| !why.is_empty())
                    .map(|(t, why)| eliminated(&t.name, why))
                    .collect(),
            });
        }
    }
    out
}

/// Why no cluster passes `w`'s rules: policy lists, then latency, then room.
fn no_cluster(w: &Workload, checks: &[(&Target, Vec<Infeasibility>)]) -> String {
    let policy = |i: &Infeasibility| matches!(i, Infeasibility::Denied | Infeasibility::NotAllowed);
    let latency = |i: &Infeasibility| matches!(i, Infeasibility::Latency { .. });
    let permitted: Vec<&(&Target, Vec<Infeasibility>)> = checks
        .iter()
        .filter(|(_, why)| !why.iter().any(policy))
        .collect();
    if checks.is_empty() {
        return format!("workload {}: there are no clusters", w.name);
    }
    if permitted.is_empty() {
        return format!(
            "workload {}: its allowed/denied clusters exclude all {} clusters",
            w.name,
            checks.len()
        );
    }
    if permitted.iter().all(|(_, why)| why.iter().any(latency)) {
        let slo = w
            .latency_slo_ms
            .iter()
            .filter(|(_, ms)| **ms < optimizer::NO_SLO_MS)
            .map(|(r, ms)| format!("≤ {ms} ms from {r}"))
            .collect::<Vec<_>>()
            .join(" and ");
        let closest = permitted
            .iter()
            .filter_map(|(t, _)| cost::mean_latency(w, t).map(|l| (t.name.as_str(), l)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, l)| format!(" (closest: {n} at {l} ms mean)"))
            .unwrap_or_default();
        return format!(
            "workload {}: no cluster it may use has latency {slo}{closest}",
            w.name
        );
    }
    format!(
        "workload {}: no cluster within its latency SLO has room for one replica (cpu {}, memory {} bytes, gpu {})",
        w.name, w.requests.cpu, w.requests.memory, w.requests.gpu
    )
}

/// The optimizer's report as the workloads it names.
pub fn from_report(report: InfeasibleReport) -> Vec<Unplaceable> {
    vec![Unplaceable {
        workload: report.workload,
        reason: report.message,
        eliminated: report
            .eliminated
            .into_iter()
            .map(|TargetReasons { target, reasons }| eliminated(&target, reasons))
            .collect(),
    }]
}
