//! Node-level rebalance against an in-process fake apiserver: the plan reads Nodes and
//! Pods over the API (paged lists, the phase field selector), a dry run evicts nothing,
//! and `execute` posts upstream-shaped policy/v1 Evictions (UID precondition) paced and
//! capped, stops a workload at a disruption budget's 429 and the run at a 403 or a
//! shutdown signal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fake_apiserver::{Fake, PHASE_SELECTOR, managed, start, start_with_config};
use optimizer::power::CurvePowerModel;
use scheduler::config::Config;
use scheduler::node_rebalance::evict::{self, Outcome, Pace};
use scheduler::node_rebalance::{NodeRebalance, plan_live};
use scheduler::runtime;
use scheduler::shutdown::Shutdown;
use serde_json::{Value, json};

fn seed(f: &Fake) {
    for name in ["de-1", "de-2", "fr-1", "fr-2"] {
        f.change(
            "nodes",
            "Node",
            json!({
                "metadata": {"name": name, "uid": format!("uid-{name}"), "managedFields": managed(),
                    "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/region": &name[..2],
                        "node.kubernetes.io/instance-type": "std-x86"}},
                "spec": {},
                "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
            }),
            false,
        );
    }
    let pod = |name: &str, node: &str, kind: &str, owner: &str, phase: &str| {
        json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "managedFields": managed(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                    "uid": format!("uid-{owner}"), "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1",
                "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}]},
            "status": {"phase": phase},
        })
    };
    for (name, node, kind, owner, phase) in [
        ("web-5d8f-a", "de-1", "ReplicaSet", "web-5d8f", "Running"),
        ("web-5d8f-b", "de-1", "ReplicaSet", "web-5d8f", "Running"),
        ("web-5d8f-c", "de-2", "ReplicaSet", "web-5d8f", "Running"),
        ("api-0", "de-2", "StatefulSet", "api", "Running"),
        ("api-1", "de-2", "StatefulSet", "api", "Running"),
        ("kepler-x", "de-1", "DaemonSet", "kepler", "Running"),
        ("job-done", "de-1", "Job", "nightly", "Succeeded"),
    ] {
        f.change("pods", "Pod", pod(name, node, kind, owner, phase), false);
    }
}

/// The plan at noon on 10 March 2020 with the demo's config, telemetry and carbon curves.
async fn plan(client: &kube::Client) -> NodeRebalance {
    let parts = runtime::demo(Config::default()).unwrap();
    let config = Arc::new(parts.config);
    let at = Utc.with_ymd_and_hms(2020, 3, 10, 12, 0, 0).unwrap();
    let power = CurvePowerModel::new();
    plan_live(
        client,
        parts.telemetry.as_ref(),
        parts.carbon.source.as_ref(),
        &config,
        &power,
        0.0,
        at,
    )
    .await
    .unwrap()
}

/// A shutdown nobody can request (its trigger is dropped).
fn never() -> Shutdown {
    Shutdown::manual(Duration::from_secs(1)).1
}

fn outcomes(out: &NodeRebalance) -> Vec<(String, Outcome)> {
    let mut v: Vec<(String, Outcome)> = out
        .evictions
        .iter()
        .map(|e| (e.pod.name.clone(), e.outcome))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn a_dry_run_reads_the_cluster_and_evicts_nothing() {
    let (fake, _gate, client) = start(true).await;
    seed(&fake);
    let out = plan(&client).await;
    let d = fake.data();
    assert!(d.evictions.is_empty());
    assert_eq!(d.node_lists, 1);
    assert_eq!(d.pod_selectors, [Some(PHASE_SELECTOR.to_string())]);
    drop(d);
    assert_eq!(out.plan.mode, "dry-run");
    let planned: Vec<&str> = out.evictions.iter().map(|e| e.pod.name.as_str()).collect();
    let mut sorted = planned.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["api-0", "api-1", "web-5d8f-a", "web-5d8f-b", "web-5d8f-c"]
    );
    assert!(out.evictions.iter().all(|e| e.outcome == Outcome::Planned));
    let pinned: Vec<&str> = out.pinned.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pinned, ["kepler-x"], "the Succeeded pod is not listed");
    let json = serde_json::to_value(&out).unwrap();
    for key in [
        "advisory",
        "mode",
        "moves",
        "skipped",
        "totalGain",
        "placement",
        "pinned",
        "evictions",
        "objective",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json:#}");
    }
    assert_eq!(json["evictions"][0]["outcome"], "planned");
}

#[tokio::test]
async fn execute_posts_evictions_paced_and_stops_at_a_budget() {
    let (fake, _gate, config) = start_with_config(true).await;
    let client = evict::client(config).unwrap();
    seed(&fake);
    {
        let mut d = fake.data();
        d.eviction_replies.insert("web-5d8f-b".into(), 429);
        d.eviction_replies.insert("api-0".into(), 409);
    }
    let mut out = plan(&client).await;
    let pace = Pace {
        max_evictions: 10,
        interval: Duration::from_millis(300),
    };
    evict::execute(&client, &mut out.evictions, pace, &never()).await;
    assert_eq!(
        outcomes(&out),
        [
            ("api-0".to_string(), Outcome::Gone),
            ("api-1".to_string(), Outcome::Evicted),
            ("web-5d8f-a".to_string(), Outcome::Evicted),
            ("web-5d8f-b".to_string(), Outcome::Blocked),
            ("web-5d8f-c".to_string(), Outcome::NotAttempted),
        ]
    );
    let by_name = |n: &str| out.evictions.iter().find(|e| e.pod.name == n).unwrap();
    let blocked = by_name("web-5d8f-b").message.clone().unwrap();
    assert!(
        blocked.contains("HTTP 429") && blocked.contains("web-pdb"),
        "{blocked}"
    );
    assert!(
        by_name("web-5d8f-c")
            .message
            .as_deref()
            .unwrap()
            .contains("refused")
    );
    let calls = fake.data().evictions.clone();
    let posted: Vec<&str> = calls.iter().map(|c| c.pod.as_str()).collect();
    assert_eq!(posted.len(), 4, "{posted:?}");
    assert!(!posted.contains(&"web-5d8f-c"));
    for c in &calls {
        assert_eq!(c.namespace, "shop");
        let expected: Value = json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": c.pod, "namespace": "shop"},
            "deleteOptions": {"preconditions": {"uid": format!("uid-{}", c.pod)}},
        });
        assert_eq!(c.body, expected);
    }
    for w in calls.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(gap >= Duration::from_millis(290), "evictions {gap:?} apart");
    }
}

#[tokio::test]
async fn the_cap_and_a_forbidden_reply_stop_the_run() {
    let (fake, _gate, config) = start_with_config(true).await;
    let client = evict::client(config).unwrap();
    seed(&fake);
    let mut out = plan(&client).await;
    let pace = Pace {
        max_evictions: 1,
        interval: Duration::ZERO,
    };
    evict::execute(&client, &mut out.evictions, pace, &never()).await;
    assert_eq!(fake.data().evictions.len(), 1);
    let evicted = out
        .evictions
        .iter()
        .filter(|e| e.outcome == Outcome::Evicted)
        .count();
    assert_eq!(evicted, 1);
    for e in out
        .evictions
        .iter()
        .filter(|e| e.outcome != Outcome::Evicted)
    {
        assert_eq!(e.outcome, Outcome::NotAttempted);
        assert!(e.message.as_deref().unwrap().contains("cap of 1"));
    }

    let (fake, _gate, config) = start_with_config(true).await;
    let client = evict::client(config).unwrap();
    seed(&fake);
    let mut out = plan(&client).await;
    let first = out.evictions[0].pod.name.clone();
    fake.data().eviction_replies.insert(first.clone(), 403);
    let pace = Pace {
        max_evictions: 10,
        interval: Duration::ZERO,
    };
    evict::execute(&client, &mut out.evictions, pace, &never()).await;
    assert_eq!(
        fake.data().evictions.len(),
        1,
        "nothing is tried after a 403"
    );
    assert_eq!(out.evictions[0].outcome, Outcome::Failed);
    for e in &out.evictions[1..] {
        assert_eq!(e.outcome, Outcome::NotAttempted);
        assert!(
            e.message
                .as_deref()
                .unwrap()
                .contains("manifests/components/rebalance")
        );
    }
}

#[tokio::test]
async fn a_shutdown_stops_the_run_between_two_evictions() {
    let (fake, _gate, config) = start_with_config(true).await;
    let client = evict::client(config).unwrap();
    seed(&fake);
    let mut out = plan(&client).await;
    let pace = Pace {
        max_evictions: 10,
        interval: Duration::from_secs(30),
    };
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
    let evictions = std::mem::take(&mut out.evictions);
    let run = tokio::spawn(async move {
        let mut evictions = evictions;
        evict::execute(&client, &mut evictions, pace, &shutdown).await;
        evictions
    });
    // The first eviction is made at once, then the run waits 30 s for the next.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.data().evictions.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no first eviction");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = std::time::Instant::now();
    trigger.request("SIGTERM");
    let evictions = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run stops at the signal, not after the 30 s pause")
        .unwrap();
    eprintln!("stopped {:?} after the signal", signalled.elapsed());
    assert_eq!(fake.data().evictions.len(), 1, "nothing is tried after it");
    assert_eq!(evictions[0].outcome, Outcome::Evicted);
    assert!(evictions.len() > 1);
    for e in &evictions[1..] {
        assert_eq!(e.outcome, Outcome::NotAttempted, "{e:?}");
        assert_eq!(
            e.message.as_deref(),
            Some("the run was stopped (SIGTERM) before this eviction")
        );
    }
}
