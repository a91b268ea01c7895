//! `ecoplace config check` refuses every configuration the binary refuses at start, naming
//! the same field path: a table of configurations, each run through `config check --for
//! VERB` and through the verb itself (`serve`, `serve --demo`, `ocm-scores`, `rebalance
//! --nodes`). No apiserver is reachable in these runs, so a configuration that passes must
//! get past every check and fail only on the Kubernetes connection — the control rows show
//! that. Warnings (a configuration that starts but cannot decide) come from both as well.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output, Stdio};

use rcgen::{CertificateParams, KeyPair};

/// A Prometheus section that passes every check (nothing is contacted before the apiserver).
const PROM: &str = "telemetry:\n  prometheus:\n    url: http://127.0.0.1:1\n";

/// One configuration: what it is for, and the field path both must name (`None`: both
/// accept it, and the verb fails later, on the apiserver).
struct Row {
    what: &'static str,
    verb: &'static str,
    yaml: String,
    refused_at: Option<&'static str>,
}

fn ecoplace(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(args)
        .current_dir(dir)
        // No cluster: an in-cluster or kubeconfig connection is impossible by construction.
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env("HOME", dir)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("POD_NAMESPACE")
        .env_remove("RUST_BACKTRACE")
        .env("ECOPLACE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn verb_args<'a>(verb: &str, file: &'a str) -> Vec<&'a str> {
    match verb {
        "serve" => vec!["serve", "--config", file],
        "demo" => vec!["serve", "--demo", "--config", file],
        "ocm-scores" => vec!["ocm-scores", "--config", file, "--listen", "127.0.0.1:0"],
        "rebalance" => vec!["rebalance", "--nodes", "--config", file],
        other => panic!("no verb {other}"),
    }
}

fn rows(dir: &Path) -> Vec<Row> {
    let cert_pem = {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        dir.join("cert.pem")
    };
    let cert = cert_pem.display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let missing = dir.join("missing.pem").display().to_string();
    std::fs::write(dir.join("em-token"), "token\n").unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
    let token = dir.join("em-token").display().to_string();
    let empty = dir.join("empty").display().to_string();
    let r = |what, verb, yaml: String, refused_at| Row {
        what,
        verb,
        yaml,
        refused_at,
    };
    vec![
        r("a valid live config", "serve", format!("{PROM}carbon:\n  staticGPerKwh: {{DE: 300}}\n"), None),
        r("a valid rebalance config", "rebalance", format!("{PROM}carbon:\n  staticGPerKwh: {{DE: 300}}\n"), None),
        r("listen without a port", "serve", format!("{PROM}extender:\n  listen: 0.0.0.0\n"), Some("extender.listen")),
        r("probes listen without a port", "demo", "extender:\n  probesListen: localhost\n".into(), Some("extender.probesListen")),
        r("a TLS certificate that does not exist", "serve", format!("{PROM}extender:\n  tls: {{certFile: {missing}, keyFile: {key}}}\n"), Some("extender.tls.certFile")),
        r("a TLS key that does not exist", "demo", format!("extender:\n  tls: {{certFile: {cert}, keyFile: {missing}}}\n"), Some("extender.tls.keyFile")),
        r("a TLS client CA that does not exist", "serve", format!("{PROM}extender:\n  tls: {{certFile: {cert}, keyFile: {key}, clientCaFile: {missing}}}\n"), Some("extender.tls.clientCaFile")),
        r("a TLS key that is a certificate", "serve", format!("{PROM}extender:\n  tls: {{certFile: {cert}, keyFile: {cert}}}\n"), Some("extender.tls.keyFile")),
        r("a Prometheus URL without a scheme", "serve", "telemetry:\n  prometheus:\n    url: prometheus.monitoring:9090\n".into(), Some("telemetry.prometheus.url")),
        r("a Prometheus URL without a scheme", "ocm-scores", "telemetry:\n  prometheus:\n    url: thanos-query:9090\nocm:\n  lease: {namespace: x}\n".into(), Some("telemetry.prometheus.url")),
        r("a Prometheus URL without a scheme", "rebalance", "telemetry:\n  prometheus:\n    url: prometheus\n".into(), Some("telemetry.prometheus.url")),
        r("a Prometheus CA file that does not exist", "serve", format!("{PROM}    caFile: {missing}\n"), Some("telemetry.prometheus.caFile")),
        r("a client certificate file that does not exist", "ocm-scores", format!("{PROM}    clientCertFile: {missing}\nocm:\n  lease: {{namespace: x}}\n"), Some("telemetry.prometheus.clientCertFile")),
        r("no Prometheus for a live verb", "serve", "carbon:\n  staticGPerKwh: {DE: 300}\n".into(), Some("telemetry.prometheus")),
        r("no Prometheus for a live verb", "rebalance", String::new(), Some("telemetry.prometheus")),
        r("telemetry stale before the next refresh", "serve", format!("{PROM}  refreshSeconds: 60\n  staleAfterSeconds: 30\n"), Some("telemetry.staleAfterSeconds")),
        r("a carbon CSV that does not exist", "serve", format!("{PROM}carbon:\n  csvFiles: {{DE: {missing}}}\n"), Some("carbon.csvFiles.DE")),
        r("a carbon forecast file that does not exist", "ocm-scores", format!("{PROM}carbon:\n  forecastFiles: [{missing}]\nocm:\n  lease: {{namespace: x}}\n"), Some("carbon.forecastFiles[0]")),
        r("a carbon CSV that does not exist", "demo", format!("carbon:\n  csvFiles: {{FR: {missing}}}\n"), Some("carbon.csvFiles.FR")),
        r("no Lease namespace for the OCM publisher", "ocm-scores", format!("{PROM}carbon:\n  staticGPerKwh: {{DE: 300}}\n"), Some("ocm.lease.namespace")),
        r("no Lease namespace for serve's OCM publisher", "serve", format!("{PROM}carbon:\n  staticGPerKwh: {{DE: 300}}\nocm:\n  enabled: true\n"), Some("ocm.lease.namespace")),
        r("a valid live carbon source", "serve", format!("{PROM}carbon:\n  electricityMaps: {{zones: {{DE: DE}}, tokenFile: {token}}}\n"), None),
        r("a live carbon token file that does not exist", "serve", format!("{PROM}carbon:\n  electricityMaps: {{zones: {{DE: DE}}, tokenFile: {missing}}}\n"), Some("carbon.electricityMaps.tokenFile")),
        r("an empty WattTime password file", "ocm-scores", format!("{PROM}carbon:\n  wattTime: {{zones: {{DE: DE}}, usernameFile: {token}, passwordFile: {empty}}}\nocm:\n  lease: {{namespace: x}}\n"), Some("carbon.wattTime.passwordFile")),
        r("a carbon-aware-sdk URL without a scheme", "rebalance", format!("{PROM}carbon:\n  carbonAwareSdk: {{zones: {{DE: germanywestcentral}}, url: carbon-aware-sdk:8080}}\n"), Some("carbon.carbonAwareSdk.url")),
        r("a live source stale before its next refresh", "serve", format!("{PROM}carbon:\n  electricityMaps: {{zones: {{DE: DE}}, tokenFile: {token}, refresh: {{latestSeconds: 600, forecastSeconds: 3600, maxAgeSeconds: 300}}}}\n"), Some("carbon.electricityMaps.refresh.maxAgeSeconds")),
        r("a live source without zones", "serve", format!("{PROM}carbon:\n  electricityMaps: {{zones: {{}}, tokenFile: {token}}}\n"), Some("carbon.electricityMaps.zones")),
        r("two live carbon sources", "serve", format!("{PROM}carbon:\n  electricityMaps: {{zones: {{DE: DE}}, tokenFile: {token}}}\n  carbonAwareSdk: {{zones: {{DE: x}}, url: http://sdk:8080}}\n"), Some("carbon.carbonAwareSdk")),
        r("a live source beside constants", "serve", format!("{PROM}carbon:\n  staticGPerKwh: {{DE: 300}}\n  electricityMaps: {{zones: {{DE: DE}}, tokenFile: {token}}}\n"), Some("carbon.electricityMaps")),
        r("an unknown key", "serve", format!("{PROM}extender:\n  listn: 0.0.0.0:8888\n"), Some("extender")),
    ]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_start_up_refusal_is_a_config_check_failure_naming_the_same_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, row) in rows(dir.path()).iter().enumerate() {
        let file = dir.path().join(format!("row{i}.yaml"));
        std::fs::write(&file, &row.yaml).unwrap();
        let file = file.display().to_string();
        let check = ecoplace(&["config", "check", "--for", row.verb, &file], dir.path());
        let start = ecoplace(&verb_args(row.verb, &file), dir.path());
        let (check_err, start_err) = (stderr(&check), stderr(&start));
        let label = format!("row {i} ({}, {})", row.what, row.verb);
        assert!(
            !start.status.success(),
            "{label}: the verb cannot succeed without an apiserver: {start_err}"
        );
        assert!(
            !start_err.contains("panicked"),
            "{label}: start-up panicked: {start_err}"
        );
        match row.refused_at {
            Some(path) => {
                let named =
                    |s: &str| s.contains(&format!("{path}:")) || s.contains(&format!("{path} "));
                if check.status.success() || !named(&check_err) {
                    failures.push(format!(
                        "{label}: config check should refuse at {path}: {check_err}"
                    ));
                }
                if !named(&start_err) {
                    failures.push(format!(
                        "{label}: start-up should refuse at {path}: {start_err}"
                    ));
                }
            }
            None => {
                if !check.status.success() {
                    failures.push(format!("{label}: config check should pass: {check_err}"));
                }
                // Past every configuration check: the verb stops at the apiserver.
                if !start_err.to_lowercase().contains("kube") {
                    failures.push(format!(
                        "{label}: should fail on the apiserver only: {start_err}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_config_that_starts_but_cannot_decide_is_warned_about_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("embedded-only.yaml");
    std::fs::write(
        &file,
        format!("{PROM}carbon:\n  embedded2020: true\npolicy:\n  userRegion: Mars\n"),
    )
    .unwrap();
    let file = file.display().to_string();
    let check = ecoplace(&["config", "check", &file], dir.path());
    let out = String::from_utf8_lossy(&check.stdout);
    let err = stderr(&check);
    assert!(check.status.success(), "{err}");
    assert!(out.contains("ok (2 warnings)"), "{out}");
    assert!(err.contains("carbon.embedded2020: embedded2020 is the only carbon source and its curves cover 2020 only"), "{err}");
    assert!(err.contains("carbon_missing"), "{err}");
    assert!(
        err.contains("policy.userRegion: `Mars` is not a user region"),
        "{err}"
    );
    let start = ecoplace(&verb_args("serve", &file), dir.path());
    let err = stderr(&start);
    assert!(err.contains("carbon.embedded2020"), "{err}");
    assert!(err.contains("policy.userRegion"), "{err}");
    // In a replay (the demo's 2020 clock) the embedded curves are what it decides with.
    let demo = ecoplace(&["config", "check", "--for", "demo", &file], dir.path());
    assert!(!stderr(&demo).contains("embedded2020"), "{}", stderr(&demo));
}
