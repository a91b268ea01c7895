//! Which running pods a node-level rebalance may move, grouped by the controller that
//! recreates them after an eviction, and the nodes each group could run on.
//!
//! The rules follow the descheduler's defaults: only pods a controller recreates, never
//! DaemonSet, static (mirror), terminating or system-critical pods, nor pods with local
//! storage unless allowed; namespaces can be excluded and `ecoplace.io/skip` is honoured.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};
use kube::ResourceExt;
use serde::Serialize;

use crate::config::Config;
use crate::fleet::policy;
use crate::fleet::{PodRequests, pod_requests};

/// Annotation the kubelet puts on the API copy of a static pod.
const MIRROR: &str = "kubernetes.io/config.mirror";

/// One pod that may be evicted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the eviction is made conditional on it).
    pub uid: String,
    /// The node it runs on.
    pub node: String,
}

/// The movable pods of one controller (`namespace/Kind/name`), with what they need.
#[derive(Debug, Clone, PartialEq)]
pub struct PodGroup {
    /// `namespace/Kind/name` of the owning controller.
    pub key: String,
    /// Its pods, by name.
    pub pods: Vec<PodRef>,
    /// Requests of one pod (the largest of the group, per resource).
    pub requests: PodRequests,
    /// Latency SLO per user region, ms (the pod policy of its first pod).
    pub latency_slo_ms: BTreeMap<String, f64>,
    /// Nodes its pods could be scheduled on (node selector, required node affinity,
    /// untolerated taints, cordoned or not-Ready nodes); the nodes they run on are always in.
    pub allowed_nodes: Vec<String>,
}

/// A pod that is left where it is, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pinned {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Why it is not moved.
    pub reason: String,
}

/// Splits the pods bound to nodes into movable groups and pinned pods.
pub fn classify(pods: &[Pod], nodes: &[Node], config: &Config) -> (Vec<PodGroup>, Vec<Pinned>) {
    let mut groups: BTreeMap<String, PodGroup> = BTreeMap::new();
    let mut pinned = Vec::new();
    let mut sorted: Vec<&Pod> = pods.iter().collect();
    sorted.sort_by_key(|p| (p.namespace(), p.name_any()));
    for pod in sorted {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let namespace = pod.namespace().unwrap_or_default();
        let key = match movable(pod, &namespace, config) {
            Ok(key) => key,
            Err(reason) => {
                pinned.push(Pinned {
                    namespace,
                    name: pod.name_any(),
                    node,
                    reason,
                });
                continue;
            }
        };
        let r = pod_requests(pod);
        let group = groups.entry(key.clone()).or_insert_with(|| {
            let (policy, warnings) = policy::resolve(
                &config.policy,
                &config.topology,
                &namespace,
                pod.annotations(),
            );
            for w in warnings {
                tracing::warn!(pod = %pod.name_any(), namespace = %namespace, "{w}");
            }
            PodGroup {
                key,
                pods: Vec::new(),
                requests: PodRequests::default(),
                latency_slo_ms: policy.latency_slo_ms,
                allowed_nodes: nodes
                    .iter()
                    .filter(|n| fits_node(pod, n))
                    .map(ResourceExt::name_any)
                    .collect(),
            }
        });
        group.requests.cpu = group.requests.cpu.max(r.cpu);
        group.requests.memory = group.requests.memory.max(r.memory);
        group.requests.gpu = group.requests.gpu.max(r.gpu);
        if !group.allowed_nodes.contains(&node) {
            group.allowed_nodes.push(node.clone());
        }
        group.pods.push(PodRef {
            namespace,
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            node,
        });
    }
    (groups.into_values().collect(), pinned)
}

/// The group key of a pod that may be moved, or why it may not.
fn movable(pod: &Pod, namespace: &str, config: &Config) -> Result<String, String> {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown");
    if phase != "Running" {
        return Err(format!("phase {phase}: only Running pods are moved"));
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Err("terminating".into());
    }
    if config
        .rebalance
        .excluded_namespaces
        .iter()
        .any(|n| n == namespace)
    {
        return Err(format!(
            "namespace {namespace} is excluded (rebalance.excludedNamespaces)"
        ));
    }
    let (policy, _) = policy::resolve(
        &config.policy,
        &config.topology,
        namespace,
        pod.annotations(),
    );
    if policy.skip {
        return Err(format!(
            "ecoplace leaves it alone ({}=true or the namespace policy)",
            policy::SKIP
        ));
    }
    if pod.annotations().contains_key(MIRROR) {
        return Err("static (mirror) pod: the kubelet runs it from a file".into());
    }
    let Some(owner) = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    else {
        return Err("no controller owns it: an evicted pod would not come back".into());
    };
    if owner.kind == "DaemonSet" {
        return Err(format!("DaemonSet {} runs a pod on every node", owner.name));
    }
    let spec = pod.spec.as_ref();
    if let Some(class) = spec
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|c| matches!(*c, "system-cluster-critical" | "system-node-critical"))
    {
        return Err(format!("priority class {class}"));
    }
    if !config.rebalance.evict_local_storage_pods
        && let Some(v) = spec
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .find(|v| v.empty_dir.is_some() || v.host_path.is_some())
    {
        return Err(format!(
            "volume {} is local storage (emptyDir/hostPath), lost on eviction (rebalance.evictLocalStoragePods)",
            v.name
        ));
    }
    Ok(format!("{namespace}/{}/{}", owner.kind, owner.name))
}

/// Whether kube-scheduler could put `pod` on `node`, as far as labels and taints say:
/// schedulable and Ready, node selector and required node affinity met, every
/// NoSchedule/NoExecute taint tolerated. (Resources are the optimizer's job.)
pub fn fits_node(pod: &Pod, node: &Node) -> bool {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return false;
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return false;
    }
    let Some(pod_spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    if let Some(sel) = &pod_spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = pod_spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(selector) = required {
        let name = node.name_any();
        let term_matches = |t: &k8s_openapi::api::core::v1::NodeSelectorTerm| {
            let exprs = t.match_expressions.as_deref().unwrap_or_default();
            let fields = t.match_fields.as_deref().unwrap_or_default();
            (!exprs.is_empty() || !fields.is_empty())
                && exprs.iter().all(|r| requirement(r, labels.get(&r.key)))
                && fields
                    .iter()
                    .all(|r| r.key == "metadata.name" && requirement(r, Some(&name)))
        };
        if !selector.node_selector_terms.iter().any(term_matches) {
            return false;
        }
    }
    let tolerations = pod_spec.tolerations.as_deref().unwrap_or_default();
    spec.and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// One node selector requirement against a label value (`None`: label absent).
fn requirement(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| number(v)),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`).
fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if tol
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            tol.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
