//! `ecoplace place` and `ecoplace rebalance` on the shipped examples: JSON answers on
//! stdout, error bodies and exit statuses for bad requests, `--execute` refused between
//! clusters, `--nodes` without its configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn ecoplace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(args)
        .output()
        .expect("running ecoplace")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn place_answers_the_example_as_json() {
    let file = example("placement-request.yaml");
    let out = ecoplace(&["place", "-f", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["placements"].as_array().unwrap().len(), 5);
    assert!(v["solver"]["status"].as_str().is_some());
    assert!(v["savings"]["carbonG"].as_f64().unwrap() > 0.0, "{v:#}");
    // This plan emits less but uses more energy than the reference. The explanation
    // gives plan − reference, signed (negative = less), never "saves -…": the JSON
    // `savings` (reference − plan, positive = better) says the same with its own sign.
    let energy = v["savings"]["energyWh"].as_f64().unwrap();
    assert!(energy < 0.0, "{v:#}");
    let line = v["explanation"][2].as_str().unwrap();
    assert!(line.contains("negative = less"), "{line}");
    // Energy prints in Wh below 1 kWh and in kWh from there, as `totals` does.
    let more = if -energy >= 1000.0 {
        format!("energy +{:.2} kWh", -energy / 1000.0)
    } else {
        format!("energy +{:.1} Wh", -energy)
    };
    assert!(line.contains(&more), "{line}");
    let percent = v["savings"]["carbonPercent"].as_f64().unwrap();
    assert!(line.contains(&format!("(−{percent:.1} %)")), "{line}");
    assert!(line.contains("carbon −"), "{line}");
    for bad in ["saves -", "saves −", "−-", "+-"] {
        assert!(!line.contains(bad), "`{bad}` in {line}");
    }
}

#[test]
fn rebalance_lists_moves_and_refuses_execute() {
    let file = example("rebalance-request.yaml");
    let path = file.to_str().unwrap();
    let out = ecoplace(&["rebalance", "--dry-run", "-f", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["mode"], "dry-run");
    assert!(!v["moves"].as_array().unwrap().is_empty());

    let strict = ecoplace(&["rebalance", "--min-gain", "1000", "-f", path]);
    assert!(strict.status.success());
    assert_eq!(json(&strict)["moves"].as_array().unwrap().len(), 0);

    let refused = ecoplace(&["rebalance", "--execute", "-f", path]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--execute is not available") && err.contains("advisory"),
        "{err}"
    );
}

#[test]
fn a_bad_request_prints_the_error_body_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"clusters": [], "workloads": [{"name": "w", "replicas": 0, "requests": {}}]}"#,
    )
    .unwrap();
    let out = ecoplace(&["place", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["kind"], "invalid");
    let fields: Vec<&str> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["clusters", "workloads[0].replicas"]);
}

#[test]
fn node_rebalance_needs_a_configuration_with_telemetry() {
    let no_config = ecoplace(&["rebalance", "--nodes"]);
    assert_eq!(no_config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_config.stderr).contains("--config"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecoplace.yaml");
    std::fs::write(&file, "policy:\n  objective: carbon\n").unwrap();
    let out = ecoplace(&["rebalance", "--nodes", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("telemetry.prometheus"), "{err}");

    let both = ecoplace(&["rebalance", "--nodes", "-f", "x.yaml", "--config", "c.yaml"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "-f and --nodes exclude each other"
    );
}

/// `place --config` and `rebalance --config`: clusters given by carbon zone only read
/// their intensity from the configuration's carbon source; without one they are refused.
#[test]
fn place_and_rebalance_read_zone_only_clusters_from_the_configs_carbon_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ecoplace.yaml");
    std::fs::write(&config, "carbon:\n  staticGPerKwh: {DE: 520, FR: 35}\n").unwrap();
    let request = dir.path().join("request.yaml");
    std::fs::write(
        &request,
        "clusters:\n\
         \x20 - {name: de, capacity: {cpu: 8, memory: 8Gi}, power: {idleWatts: 100, maxWatts: 300}, carbon: {zone: DE}}\n\
         \x20 - {name: fr, capacity: {cpu: 8, memory: 8Gi}, power: {idleWatts: 100, maxWatts: 300}, carbon: {zone: FR}}\n\
         workloads:\n\
         \x20 - {name: w, replicas: 1, requests: {cpu: 2}, current: {de: 1}}\n",
    )
    .unwrap();
    let (cfg, req) = (config.to_str().unwrap(), request.to_str().unwrap());
    let out = ecoplace(&["place", "--config", cfg, "-f", req]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    assert_eq!(v["placements"][0]["clusters"][0]["cluster"], "fr", "{v}");
    let out = ecoplace(&["rebalance", "--config", cfg, "-f", req]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(json(&out).to_string().contains("\"fr\""));
    let out = ecoplace(&["place", "-f", req]);
    assert!(!out.status.success());
    let v = json(&out);
    assert!(v.to_string().contains("clusters[0].carbon.gPerKwh"), "{v}");
}
