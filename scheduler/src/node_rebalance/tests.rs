#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;
use optimizer::power::CurvePowerModel;
use serde_json::json;

use super::*;
use crate::runtime;

/// Two nodes in DE (coal-heavy grid in 2020) and two in FR (nuclear), all `std-x86`.
fn nodes() -> Vec<Node> {
    ["de-1", "de-2", "fr-1", "fr-2"]
        .iter()
        .map(|name| {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {
                    "topology.kubernetes.io/region": &name[..2],
                    "node.kubernetes.io/instance-type": "std-x86"}},
                "spec": {},
                "status": {"allocatable": {"cpu": "16", "memory": "64Gi"},
                    "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap()
        })
        .collect()
}

fn pod(name: &str, node: &str, owner: (&str, &str)) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1,
                "uid": "o", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c",
            "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}]},
        "status": {"phase": "Running"},
    }))
    .unwrap()
}

fn pods() -> Vec<Pod> {
    vec![
        pod("web-a", "de-1", ("ReplicaSet", "web-5d8f")),
        pod("web-b", "de-1", ("ReplicaSet", "web-5d8f")),
        pod("web-c", "de-2", ("ReplicaSet", "web-5d8f")),
        pod("web-d", "fr-1", ("ReplicaSet", "web-5d8f")),
        pod("kepler-x", "de-1", ("DaemonSet", "kepler")),
    ]
}

/// The demo's configuration.
fn demo_config() -> Config {
    runtime::demo(Config::default()).unwrap().config
}

/// The demo's configuration, telemetry and 2020 carbon curves, at noon on 10 March 2020.
async fn view(nodes: &[Node], pods: &[Pod]) -> FleetView {
    let parts = runtime::demo(Config::default()).unwrap();
    let at = Utc.with_ymd_and_hms(2020, 3, 10, 12, 0, 0).unwrap();
    let snapshot = parts.telemetry.snapshot(at).await.unwrap();
    let settings = Arc::new(ViewSettings::of(&parts.config));
    let facts = node_facts(&refs(nodes), &refs(pods));
    let inputs = view_inputs(
        &facts,
        Some(Arc::new(snapshot)),
        parts.carbon.source.as_ref(),
        &settings,
        at,
    )
    .await;
    FleetView::build(Some(&facts), inputs)
}

/// The plan of [`pods`] over [`nodes`] with the fitted curves and `min_gain`.
async fn demo_plan(min_gain: f64) -> NodeRebalance {
    let (nodes, pods) = (nodes(), pods());
    let v = view(&nodes, &pods).await;
    plan(
        &nodes,
        &pods,
        v,
        &demo_config(),
        &CurvePowerModel::new(),
        min_gain,
    )
    .unwrap()
}

#[tokio::test]
async fn pods_on_the_dirtier_grid_are_evicted_towards_the_cleaner_one() {
    let out = demo_plan(0.0).await;
    assert_eq!(out.plan.mode, "dry-run");
    assert_eq!(out.plan.advisory, ADVISORY);
    assert_eq!(out.objective, "balanced");
    assert_eq!(out.plan.moves.len(), 1, "{:#?}", out.plan);
    let mv = &out.plan.moves[0];
    assert_eq!(mv.workload, "shop/ReplicaSet/web-5d8f");
    assert_eq!(mv.replicas_moved, 3);
    assert!(
        mv.transfers
            .iter()
            .all(|t| t.from.starts_with("de-") && t.to.starts_with("fr-"))
    );
    assert!(mv.gain.carbon_g_per_hour > 0.0 && mv.gain.objective > 0.0);
    // One eviction per replica leaving a DE node, each pointing at the plan's FR node.
    let evicted: Vec<(&str, &str)> = out
        .evictions
        .iter()
        .map(|e| (e.pod.name.as_str(), e.pod.node.as_str()))
        .collect();
    assert_eq!(
        evicted,
        [("web-a", "de-1"), ("web-b", "de-1"), ("web-c", "de-2")]
    );
    for e in &out.evictions {
        assert_eq!(e.outcome, Outcome::Planned);
        assert_eq!(e.pod.uid, format!("uid-{}", e.pod.name));
        assert!(e.towards.starts_with("fr-"));
    }
    assert_eq!(out.pinned.len(), 1);
    assert!(out.pinned[0].reason.contains("DaemonSet kepler"));
    // The placement after the moves keeps all four replicas, now in FR.
    let after = &out.plan.placement[0];
    assert_eq!(after.replicas, 4);
    assert!(after.clusters.iter().all(|c| c.cluster.starts_with("fr-")));
}

#[tokio::test]
async fn moves_below_the_threshold_evict_nothing() {
    let out = demo_plan(1e9).await;
    assert!(out.plan.moves.is_empty());
    assert!(out.evictions.is_empty());
    assert_eq!(out.plan.skipped.len(), 1);
    assert!(out.plan.skipped[0].reason.contains("below the minimum"));
}

#[tokio::test]
async fn no_plan_from_missing_telemetry() {
    let (nodes, pods) = (nodes(), pods());
    let mut v = view(&nodes, &pods).await;
    v.inputs.snapshot = None;
    let v = FleetView::build(Some(&node_facts(&refs(&nodes), &refs(&pods))), v.inputs);
    let err = plan(
        &nodes,
        &pods,
        v,
        &demo_config(),
        &CurvePowerModel::new(),
        0.0,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NodeRebalanceError::NoData(_)));
    assert!(
        text.contains("telemetry_missing") && text.contains("no moves"),
        "{text}"
    );
}
