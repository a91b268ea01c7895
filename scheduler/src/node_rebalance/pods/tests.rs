#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;

fn node(name: &str, extra: Value) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "disk": "ssd", "gen": "7"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut n, extra);
    serde_json::from_value(n).unwrap()
}

fn pod(name: &str, node: &str, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                "uid": "rs-uid", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
        "status": {"phase": "Running"},
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

/// Overwrites `extra`'s leaves into `base` (objects merged, anything else replaced).
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn reason(p: Pod) -> String {
    let (groups, pinned) = classify(&[p], &[node("n1", json!({}))], &Config::default());
    assert!(
        groups.is_empty(),
        "expected the pod to be pinned: {groups:?}"
    );
    pinned[0].reason.clone()
}

#[test]
fn pods_a_controller_recreates_are_grouped_by_controller() {
    let nodes = [node("n1", json!({})), node("n2", json!({}))];
    let pods = [
        pod(
            "web-5d8f-b",
            "n2",
            json!({"spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}]}}),
        ),
        pod("web-5d8f-a", "n1", json!({})),
        pod(
            "api-0",
            "n1",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "StatefulSet", "name": "api", "uid": "ss", "controller": true}]}}),
        ),
        pod("pending", "n1", json!({"status": {"phase": "Pending"}})),
        pod("unbound", "", json!({"spec": {"nodeName": null}})),
    ];
    let (groups, pinned) = classify(&pods, &nodes, &Config::default());
    let keys: Vec<&str> = groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["shop/ReplicaSet/web-5d8f", "shop/StatefulSet/api"]);
    let web = &groups[0];
    let names: Vec<&str> = web.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-5d8f-a", "web-5d8f-b"]);
    assert_eq!(web.pods[0].uid, "uid-web-5d8f-a");
    assert_eq!(web.pods[0].node, "n1");
    // The largest request of the group per resource: 1 core, 1 GiB.
    assert_eq!(web.requests.cpu, 1.0);
    assert_eq!(web.requests.memory, 1024.0 * 1024.0 * 1024.0);
    assert_eq!(web.allowed_nodes, ["n1", "n2"]);
    assert_eq!(pinned.len(), 1, "the unbound pod is not listed at all");
    assert_eq!(pinned[0].name, "pending");
    assert!(
        pinned[0].reason.contains("phase Pending"),
        "{}",
        pinned[0].reason
    );
}

#[test]
fn pods_that_must_stay_say_why() {
    let bare = pod("bare", "n1", json!({"metadata": {"ownerReferences": []}}));
    assert!(reason(bare).contains("no controller"));
    let ds = pod(
        "ds",
        "n1",
        json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
        "kind": "DaemonSet", "name": "kepler", "uid": "d", "controller": true}]}}),
    );
    assert!(reason(ds).contains("DaemonSet kepler"));
    let mirror = pod(
        "etcd",
        "n1",
        json!({"metadata": {"annotations": {MIRROR: "abc"}}}),
    );
    assert!(reason(mirror).contains("mirror"));
    let system = pod(
        "dns",
        "n1",
        json!({"metadata": {"namespace": "kube-system"}}),
    );
    assert!(reason(system).contains("rebalance.excludedNamespaces"));
    let critical = pod(
        "c",
        "n1",
        json!({"spec": {"priorityClassName": "system-node-critical"}}),
    );
    assert!(reason(critical).contains("system-node-critical"));
    let local = pod(
        "l",
        "n1",
        json!({"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}),
    );
    assert!(reason(local).contains("volume scratch"));
    let skip = pod(
        "s",
        "n1",
        json!({"metadata": {"annotations": {"ecoplace.io/skip": "true"}}}),
    );
    assert!(reason(skip).contains("ecoplace.io/skip"));
    let gone = pod(
        "g",
        "n1",
        json!({"metadata": {"deletionTimestamp": "2026-11-29T08:00:00Z"}}),
    );
    assert_eq!(reason(gone), "terminating");
    let mut allow_local = Config::default();
    allow_local.rebalance.evict_local_storage_pods = true;
    let local = pod(
        "l",
        "n1",
        json!({"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}),
    );
    let (groups, pinned) = classify(&[local], &[node("n1", json!({}))], &allow_local);
    assert_eq!((groups.len(), pinned.len()), (1, 0));
}

#[test]
fn destinations_follow_selectors_affinity_taints_and_readiness() {
    let plain = pod("p", "n1", json!({}));
    assert!(fits_node(&plain, &node("n", json!({}))));
    assert!(!fits_node(
        &plain,
        &node("n", json!({"spec": {"unschedulable": true}}))
    ));
    let not_ready = node(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    assert!(!fits_node(&plain, &not_ready));

    let selector = pod(
        "p",
        "n1",
        json!({"spec": {"nodeSelector": {"disk": "hdd"}}}),
    );
    assert!(!fits_node(&selector, &node("n", json!({}))));
    assert!(fits_node(
        &selector,
        &node("n", json!({"metadata": {"labels": {"disk": "hdd"}}}))
    ));

    let affinity = |terms: Value| {
        pod(
            "p",
            "n1",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
        )
    };
    let n = node("n", json!({}));
    let expr = |op: &str, values: Value| json!([{"matchExpressions": [{"key": "gen", "operator": op, "values": values}]}]);
    assert!(fits_node(&affinity(expr("In", json!(["6", "7"]))), &n));
    assert!(!fits_node(&affinity(expr("NotIn", json!(["7"]))), &n));
    assert!(fits_node(&affinity(expr("Gt", json!(["6"]))), &n));
    assert!(!fits_node(&affinity(expr("Lt", json!(["7"]))), &n));
    assert!(fits_node(
        &affinity(json!([{"matchExpressions": [{"key": "gen", "operator": "Exists"}]}])),
        &n
    ));
    assert!(!fits_node(
        &affinity(json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}])),
        &n
    ));
    assert!(fits_node(
        &affinity(json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}])),
        &n
    ));
    // Terms are ORed; an empty term matches nothing.
    let either = json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]);
    assert!(fits_node(&affinity(either), &n));
    assert!(!fits_node(&affinity(json!([{}])), &n));

    let tainted = node(
        "n",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "soft", "effect": "PreferNoSchedule"}]}}),
    );
    assert!(
        !fits_node(&plain, &tainted),
        "an untolerated NoSchedule taint"
    );
    let equal = pod(
        "p",
        "n1",
        json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}}),
    );
    assert!(fits_node(&equal, &tainted), "PreferNoSchedule is soft");
    let wrong_value = pod(
        "p",
        "n1",
        json!({"spec": {"tolerations": [{"key": "dedicated", "value": "web"}]}}),
    );
    assert!(!fits_node(&wrong_value, &tainted));
    let exists_all = pod(
        "p",
        "n1",
        json!({"spec": {"tolerations": [{"operator": "Exists"}]}}),
    );
    assert!(fits_node(&exists_all, &tainted));
    let other_effect = pod(
        "p",
        "n1",
        json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}}),
    );
    assert!(!fits_node(&other_effect, &tainted));
}

#[test]
fn a_group_may_always_stay_where_it_runs() {
    // The pod runs on a node it would no longer be scheduled on (cordoned): moving it is
    // allowed, never required.
    let nodes = [
        node("n1", json!({"spec": {"unschedulable": true}})),
        node("n2", json!({})),
    ];
    let (groups, _) = classify(
        &[pod("web-5d8f-a", "n1", json!({}))],
        &nodes,
        &Config::default(),
    );
    assert_eq!(groups[0].allowed_nodes, ["n2", "n1"]);
}
