//! The configurations embedded in manifests/ are valid and agree with each other: the second
//! scheduler's KubeSchedulerConfiguration parses with strict field checking and points at
//! ecoplace's Service, prefix and verbs with a timeout above ecoplace's deadline, and the
//! ConfigMap's ecoplace.yaml passes `ecoplace config check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod kube_scheduler_config;

use std::path::{Path, PathBuf};
use std::process::Command;

use kube_scheduler_config::{KubeSchedulerConfiguration, go_duration_s};
use scheduler::config::Config;
use serde::Deserialize;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every YAML document of a manifest file.
fn docs(rel: &str) -> Vec<Value> {
    let path = repo().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The document of `kind` named `name` in a manifest file.
fn object(rel: &str, kind: &str, name: &str) -> Value {
    docs(rel)
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{rel}: no {kind}/{name}"))
}

/// A ConfigMap's data entry.
fn configmap_entry(rel: &str, name: &str, key: &str) -> String {
    object(rel, "ConfigMap", name)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{rel}: ConfigMap {name} has no data.{key}"))
        .to_string()
}

fn ecoplace_config() -> Config {
    let text = configmap_entry(
        "manifests/base/configmap.yaml",
        "ecoplace-config",
        "ecoplace.yaml",
    );
    Config::parse(&text, "manifests/base/configmap.yaml#ecoplace.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn scheduler_config() -> KubeSchedulerConfiguration {
    let rel = "manifests/overlays/extender/scheduler-config.yaml";
    let text = configmap_entry(rel, "ecoplace-scheduler-config", "scheduler-config.yaml");
    let de = serde_yaml::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .unwrap_or_else(|e| panic!("{rel}: {}: {}", e.path(), e.inner()))
}

fn ecoplace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(args)
        .output()
        .expect("running ecoplace")
}

#[test]
fn configmap_ecoplace_yaml_passes_config_check() {
    let text = configmap_entry(
        "manifests/base/configmap.yaml",
        "ecoplace-config",
        "ecoplace.yaml",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecoplace.yaml");
    std::fs::write(&file, text).unwrap();
    let out = ecoplace(&["config", "check", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "ecoplace config check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let example = repo().join("docs/ecoplace.example.yaml");
    let out = ecoplace(&["config", "check", example.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ConfigMap's commented live carbon sources, each uncommented in place of
/// `staticGPerKwh` with its credential files where the Deployment mounts the Secret
/// (here a temporary directory), pass `ecoplace config check`; and a missing credential
/// file is refused with its field path.
#[test]
fn configmap_live_carbon_examples_pass_config_check() {
    let text = configmap_entry(
        "manifests/base/configmap.yaml",
        "ecoplace-config",
        "ecoplace.yaml",
    );
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("carbon");
    std::fs::create_dir(&secrets).unwrap();
    for f in ["auth-token", "username", "password"] {
        std::fs::write(secrets.join(f), "credential\n").unwrap();
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("staticGPerKwh:"))
        .unwrap();
    let mut checked = 0;
    for key in ["electricityMaps", "wattTime", "carbonAwareSdk"] {
        let head = lines
            .iter()
            .position(|l| {
                l.trim() == format!("# {key}:") || l.trim().starts_with(&format!("# {key}: "))
            })
            .unwrap_or_else(|| panic!("the ConfigMap shows no {key}"));
        let indent = lines[head].find('#').unwrap();
        let mut block = vec![format!("{}{key}:", " ".repeat(indent))];
        for l in &lines[head + 1..] {
            let Some(i) = l.find("#   ") else { break };
            if i != indent {
                break;
            }
            block.push(format!("{}  {}", " ".repeat(indent), &l[i + 4..]));
        }
        // Replace staticGPerKwh and its two zones by the block.
        let mut out: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
        out.extend(block);
        out.extend(lines[start + 3..].iter().map(|l| l.to_string()));
        let yaml = out
            .join("\n")
            .replace("/etc/ecoplace-carbon", secrets.to_str().unwrap());
        let file = dir.path().join(format!("{key}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        let out = ecoplace(&["config", "check", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{key}: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
        if key != "carbonAwareSdk" {
            let gone = yaml.replace(secrets.to_str().unwrap(), "/nonexistent");
            std::fs::write(&file, gone).unwrap();
            let out = ecoplace(&["config", "check", file.to_str().unwrap()]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{key}: {err}");
            assert!(
                err.contains(&format!("carbon.{key}.")) && err.contains("File"),
                "{key}: {err}"
            );
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn config_check_fails_with_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, path) in [
        ("extender:\n  deadlineMs: 2000\n", "extender.deadlineMs"),
        (
            "telemetry:\n  prometheus:\n    tiemout: 1\n",
            "telemetry.prometheus",
        ),
        ("policy:\n  objective: greenest\n", "policy.objective"),
    ] {
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = ecoplace(&["config", "check", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{yaml} passed");
        assert!(err.contains(&format!("bad.yaml: {path}")), "{yaml}: {err}");
    }
}

#[test]
fn scheduler_configuration_registers_ecoplace() {
    let ks = scheduler_config();
    let eco = ecoplace_config();
    assert_eq!(ks.api_version, "kubescheduler.config.k8s.io/v1");
    assert_eq!(ks.kind, "KubeSchedulerConfiguration");
    assert!(
        ks.profiles
            .iter()
            .any(|p| p.scheduler_name.as_deref() == Some("ecoplace-scheduler")),
        "a profile named ecoplace-scheduler"
    );
    let [ext] = ks.extenders.as_slice() else {
        panic!("exactly one extender, got {}", ks.extenders.len())
    };
    let service = object("manifests/base/service.yaml", "Service", "ecoplace");
    let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert_eq!(
        ext.url_prefix,
        format!(
            "http://ecoplace.ecoplace-system.svc:{port}{}",
            eco.extender.prefix
        )
    );
    assert_eq!(ext.filter_verb.as_deref(), Some("filter"));
    assert_eq!(ext.prioritize_verb.as_deref(), Some("prioritize"));
    assert_eq!(ext.node_cache_capable, Some(true));
    assert_eq!(ext.ignorable, Some(true), "never block pods on ecoplace");
    assert_eq!(ext.enable_https, Some(eco.extender.tls.is_some()));
    assert!(ext.weight.is_some_and(|w| w > 0));
    let timeout_s = go_duration_s(ext.http_timeout.as_deref().unwrap_or("5s")).unwrap();
    let deadline_s = eco.extender.deadline_ms as f64 / 1000.0;
    assert!(
        timeout_s > deadline_s,
        "httpTimeout {timeout_s}s must exceed extender.deadlineMs {deadline_s}s"
    );
}

#[test]
fn scheduler_leader_lease_is_granted() {
    let le = scheduler_config().leader_election;
    assert_eq!(le.leader_elect, Some(true));
    let name = le.resource_name.expect("resourceName");
    assert_eq!(name, "ecoplace-scheduler");
    let ns = le
        .resource_namespace
        .unwrap_or_else(|| "kube-system".into());
    let role = object(
        "manifests/overlays/extender/scheduler-rbac.yaml",
        "Role",
        "ecoplace-scheduler-leader-election",
    );
    assert_eq!(role["metadata"]["namespace"].as_str(), Some(ns.as_str()));
    let grants = role["rules"].as_sequence().unwrap().iter().any(|r| {
        let has = |k: &str, v: &str| {
            r[k].as_sequence()
                .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(v)))
        };
        has("resources", "leases") && has("resourceNames", &name) && has("verbs", "update")
    });
    assert!(grants, "the Role grants update on Lease {name}");
}

#[test]
fn deployments_mount_what_they_read() {
    let cases = [
        (
            "manifests/base/deployment.yaml",
            "ecoplace",
            "ecoplace-config",
            "ecoplace.yaml",
        ),
        (
            "manifests/overlays/extender/scheduler-deployment.yaml",
            "ecoplace-scheduler",
            "ecoplace-scheduler-config",
            "scheduler-config.yaml",
        ),
    ];
    for (rel, name, configmap, key) in cases {
        let spec = &object(rel, "Deployment", name)["spec"]["template"]["spec"];
        let volume = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["configMap"]["name"].as_str() == Some(configmap))
            .unwrap_or_else(|| panic!("{rel}: no volume of ConfigMap {configmap}"));
        let container = &spec["containers"][0];
        let mount = container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("{rel}: volume not mounted"));
        let file = format!("{}/{key}", mount["mountPath"].as_str().unwrap());
        let argv: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| container[*k].as_sequence())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            argv.iter().any(|a| a.ends_with(&file)),
            "{rel}: {argv:?} does not read {file}"
        );
    }
}

#[test]
fn go_durations() {
    assert_eq!(go_duration_s("500ms"), Ok(0.5));
    assert_eq!(go_duration_s("1m30s"), Ok(90.0));
    assert!(go_duration_s("500").is_err());
    assert!(go_duration_s("5 s").is_err());
}

/// `ecoplace_*` names in `text`, histogram series suffixes removed.
fn ecoplace_metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ecoplace_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboard_and_alerts_use_exported_metrics() {
    // Every component's metrics (registered in the same registry).
    let exported: std::collections::BTreeSet<String> = [
        "scheduler/src/extender/metrics.rs",
        "scheduler/src/fleet/metrics.rs",
        "scheduler/src/ocm/metrics.rs",
        "scheduler/src/carbon_window/metrics.rs",
    ]
    .iter()
    .flat_map(|rel| ecoplace_metric_names(&std::fs::read_to_string(repo().join(rel)).unwrap()))
    .collect();
    for name in [
        "ecoplace_fail_open_total",
        "ecoplace_ocm_score_publish_failures_total",
    ] {
        assert!(exported.contains(name), "{name} not in {exported:?}");
    }
    for rel in [
        "manifests/monitoring/prometheusrule.yaml",
        "manifests/monitoring/ecoplace-dashboard.json",
    ] {
        let text = std::fs::read_to_string(repo().join(rel)).unwrap();
        for name in ecoplace_metric_names(&text) {
            assert!(
                exported.contains(&name),
                "{rel} uses {name}, which ecoplace does not export"
            );
        }
    }
}

/// The shipped binary is the stripped `dist` profile (docs/install.md "Binary size": 52 MiB,
/// not the 232 MiB of a `--release` build with line tables).
#[test]
fn the_image_ships_the_stripped_dist_profile() {
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let dist = cargo
        .split("[profile.dist]")
        .nth(1)
        .expect("Cargo.toml has [profile.dist]");
    let dist = dist.split("\n[").next().unwrap_or(dist);
    for line in [
        "inherits = \"release\"",
        "debug = false",
        "strip = \"symbols\"",
    ] {
        assert!(dist.contains(line), "[profile.dist] lacks `{line}`:{dist}");
    }
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("cargo build --profile dist --locked -p scheduler --bin ecoplace")
            && dockerfile.contains("cp target/dist/ecoplace /ecoplace"),
        "the Dockerfile must build and copy the dist profile"
    );
    let install = std::fs::read_to_string(repo().join("docs/install.md")).unwrap();
    assert!(
        install.contains("### Binary size"),
        "docs/install.md records the size"
    );
}
