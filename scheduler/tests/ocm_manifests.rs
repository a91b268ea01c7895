//! The OCM manifests agree with the code: the ocm-hub overlay's ecoplace.yaml parses
//! strictly with the publisher on, its RBAC grants what the publisher calls, and the
//! example Placement asks for the score the publisher writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use scheduler::config::Config;
use serde_yaml::Value;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn docs(rel: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(rel))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn hub_overlay_config_enables_the_publisher() {
    let k = &docs("manifests/overlays/ocm-hub/kustomization.yaml")[0];
    let patch = k["patches"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["target"]["kind"] == "ConfigMap")
        .unwrap();
    let ops: Vec<Value> = serde_yaml::from_str(patch["patch"].as_str().unwrap()).unwrap();
    assert_eq!(ops[0]["path"], "/data/ecoplace.yaml");
    let text = ops[0]["value"].as_str().unwrap();
    let config = Config::parse(text, "overlays/ocm-hub#ecoplace.yaml").unwrap();
    assert!(config.ocm.enabled);
    assert_eq!(config.ocm.score_resource_name, "ecoplace");
    for region in &config.ocm.user_regions {
        for row in config.topology.latency_ms.values() {
            assert!(row.contains_key(region), "latencyMs rows cover {region}");
        }
    }
}

#[test]
fn hub_rbac_grants_the_publisher_calls() {
    let rbac = docs("manifests/overlays/ocm-hub/hub-rbac.yaml");
    let rules = |kind: &str| -> Vec<(String, Vec<String>)> {
        let role = rbac.iter().find(|d| d["kind"] == kind).unwrap();
        role["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|r| {
                let verbs: Vec<String> = r["verbs"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                r["resources"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(move |res| (res.as_str().unwrap().to_string(), verbs.clone()))
            })
            .collect()
    };
    let cluster = rules("ClusterRole");
    let has = |rules: &[(String, Vec<String>)], res: &str, verb: &str| {
        rules
            .iter()
            .any(|(r, v)| r == res && v.iter().any(|x| x == verb))
    };
    assert!(has(&cluster, "managedclusters", "list"));
    assert!(has(&cluster, "addonplacementscores", "get"));
    assert!(has(&cluster, "addonplacementscores", "create"));
    assert!(has(&cluster, "addonplacementscores/status", "update"));
    let lease = rules("Role");
    for verb in ["get", "create", "patch"] {
        assert!(has(&lease, "leases", verb), "leases {verb}");
    }
}

#[test]
fn example_placement_uses_the_published_score() {
    let placement = docs("manifests/ocm/placement.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Placement")
        .unwrap();
    let policy = &placement["spec"]["prioritizerPolicy"];
    assert_eq!(policy["mode"], "Additive");
    let c = &policy["configurations"][0];
    assert_eq!(c["scoreCoordinate"]["type"], "AddOn");
    let defaults = Config::default();
    assert_eq!(
        c["scoreCoordinate"]["addOn"]["resourceName"].as_str(),
        Some(defaults.ocm.score_resource_name.as_str())
    );
    assert_eq!(
        c["scoreCoordinate"]["addOn"]["scoreName"].as_str(),
        Some(scheduler::ocm::scores::COMBINED)
    );
    assert_eq!(c["weight"], 3);
}
