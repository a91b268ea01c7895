//! Unit tests of parsing and semantic checks.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn empty_file_is_the_defaults() {
    let c = Config::parse("{}", "x.yaml").unwrap();
    assert_eq!(c.extender.listen, "0.0.0.0:8888");
    assert_eq!(c.extender.prefix, "/scheduler");
    assert_eq!(c.extender.deadline_ms, 250);
}

#[test]
fn errors_name_the_field_path() {
    let e = Config::parse(
        "policy:\n  namespaces:\n    batch:\n      objectiv: carbon\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("policy.namespaces.batch"), "{e}");
    assert!(e.contains("unknown field `objectiv`"), "{e}");
    let e = Config::parse(
        "policy:\n  namespaces:\n    batch:\n      objective: greenest\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("policy.namespaces.batch.objective"), "{e}");
    let e = Config::parse("extender:\n  deadlineMs: soon\n", "x.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("extender.deadlineMs"), "{e}");
    let e = Config::parse(
        "power:\n  nodeTypes:\n    m5:\n      idleWatts: 300\n      maxWatts: 200\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("power.nodeTypes.m5"), "{e}");
}

#[test]
fn events_section_defaults_and_checks() {
    let c = Config::parse("{}", "x.yaml").unwrap();
    assert!(c.events.enabled);
    assert!(!c.events.explain);
    assert_eq!(c.events.min_interval_seconds, 300.0);
    assert_eq!(c.events.max_per_second, 10.0);
    let c = Config::parse(
        "events:\n  explain: true\n  minIntervalSeconds: 60\n  maxPerSecond: 2.5\n",
        "x.yaml",
    )
    .unwrap();
    assert!(c.events.explain && c.events.enabled);
    assert_eq!(c.events.min_interval_seconds, 60.0);
    assert_eq!(c.events.max_per_second, 2.5);
    for (yaml, path) in [
        (
            "events:\n  minIntervalSeconds: -1\n",
            "events.minIntervalSeconds",
        ),
        (
            "events:\n  minIntervalSeconds: .inf\n",
            "events.minIntervalSeconds",
        ),
        ("events:\n  maxPerSecond: 0\n", "events.maxPerSecond"),
        ("events:\n  maxPerSecond: .nan\n", "events.maxPerSecond"),
        ("events:\n  explian: true\n", "events"),
        ("events:\n  enabled: maybe\n", "events.enabled"),
    ] {
        let e = Config::parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(e.contains(&format!("x.yaml: {path}")), "{yaml}: {e}");
    }
}

#[test]
fn deadline_must_stay_below_a_second() {
    assert!(Config::parse("extender:\n  deadlineMs: 999\n", "x.yaml").is_ok());
    let e = Config::parse("extender:\n  deadlineMs: 1000\n", "x.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.yaml: extender.deadlineMs"), "{e}");
}

#[test]
fn prometheus_keys_are_camel_case_with_snake_case_aliases() {
    let camel = "telemetry:\n  prometheus:\n    url: http://t:9090\n    bearerTokenFile: /t\n    \
                 timeoutSeconds: 2\n    lookbackSeconds: 30\n    rateWindowSeconds: 10\n    \
                 staleAfterSeconds: 15\n    clusterLabel: k\ncarbon:\n  prometheus:\n    \
                 zoneLabel: region\n    stepSeconds: 60\n";
    let snake = "telemetry:\n  prometheus:\n    url: http://t:9090\n    bearer_token_file: /t\n    \
                 timeout_s: 2\n    lookback_s: 30\n    rate_window_s: 10\n    \
                 stale_after_s: 15\n    cluster_label: k\ncarbon:\n  prometheus:\n    \
                 zone_label: region\n    step_s: 60\n";
    for yaml in [camel, snake] {
        let c = Config::parse(yaml, "x.yaml").unwrap();
        let p = c.telemetry.prometheus.unwrap();
        assert_eq!(p.endpoint.bearer_token_file.as_deref(), Some("/t"));
        assert_eq!(p.endpoint.timeout_s, 2.0);
        assert_eq!((p.lookback_s, p.rate_window_s), (30, 10));
        assert_eq!(p.stale_after_s, 15.0);
        assert_eq!(p.cluster_label, "k");
        let cp = c.carbon.prometheus.unwrap();
        assert_eq!((cp.zone_label.as_str(), cp.step_s), ("region", 60.0));
    }
    for (yaml, path) in [
        (
            "telemetry:\n  prometheus:\n    bearerTokenFiel: /t\n",
            "telemetry.prometheus",
        ),
        (
            "telemetry:\n  prometheus:\n    lookbackSeconds: 5\n",
            "telemetry.prometheus.lookbackSeconds",
        ),
        (
            "telemetry:\n  prometheus:\n    timeoutSeconds: 0\n",
            "telemetry.prometheus.timeoutSeconds",
        ),
        (
            "telemetry:\n  prometheus: {}\ncarbon:\n  prometheus:\n    zoneLabel: 1x\n",
            "carbon.prometheus.zoneLabel",
        ),
    ] {
        let e = Config::parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(e.contains(&format!("x.yaml: {path}")), "{yaml}: {e}");
    }
}

#[test]
fn kubernetes_watch_grace_defaults_and_checks() {
    let c = Config::parse("{}", "x.yaml").unwrap();
    assert_eq!(c.kubernetes.watch_stale_after_seconds, 30.0);
    let c = Config::parse("kubernetes:\n  watchStaleAfterSeconds: 1.5\n", "x.yaml").unwrap();
    assert_eq!(c.kubernetes.watch_stale_after_seconds, 1.5);
    for yaml in [
        "kubernetes:\n  watchStaleAfterSeconds: 0\n",
        "kubernetes:\n  watchStaleAfterSeconds: -3\n",
        "kubernetes:\n  watchStaleAfterSeconds: .nan\n",
    ] {
        let e = Config::parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(
            e.contains("x.yaml: kubernetes.watchStaleAfterSeconds"),
            "{yaml}: {e}"
        );
    }
}

#[test]
fn periods_are_bounded_so_no_duration_overflows() {
    for (yaml, path) in [
        (
            "telemetry:\n  refreshSeconds: 1e300\n",
            "telemetry.refreshSeconds",
        ),
        (
            "telemetry:\n  refreshSeconds: 0\n",
            "telemetry.refreshSeconds",
        ),
        (
            "rebalance:\n  evictionIntervalSeconds: 1e300\n",
            "rebalance.evictionIntervalSeconds",
        ),
        (
            "rebalance:\n  evictionIntervalSeconds: -1\n",
            "rebalance.evictionIntervalSeconds",
        ),
    ] {
        let e = Config::parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(e.contains(&format!("x.yaml: {path}")), "{yaml}: {e}");
    }
    // Telemetry refreshed daily must also stay fresh for a day.
    let ok = "telemetry:\n  refreshSeconds: 86400\n  staleAfterSeconds: 90000\nrebalance:\n  evictionIntervalSeconds: 0\n";
    assert!(Config::parse(ok, "x.yaml").is_ok());
}

#[test]
fn addresses_urls_and_freshness_that_start_up_would_refuse_are_refused_here() {
    for (yaml, path, says) in [
        (
            "extender:\n  listen: 0.0.0.0\n",
            "extender.listen",
            "with a port",
        ),
        (
            "extender:\n  listen: ecoplace:8888\n",
            "extender.listen",
            "IP address",
        ),
        (
            "extender:\n  probesListen: \":8081\"\n",
            "extender.probesListen",
            "with a port",
        ),
        (
            "telemetry:\n  prometheus:\n    url: prometheus:9090\n",
            "telemetry.prometheus.url",
            "http://",
        ),
        (
            "telemetry:\n  prometheus:\n    url: ftp://prometheus:9090\n",
            "telemetry.prometheus.url",
            "http://",
        ),
        (
            "telemetry:\n  refreshSeconds: 60\n  staleAfterSeconds: 30\n",
            "telemetry.staleAfterSeconds",
            "below telemetry.refreshSeconds",
        ),
        (
            "topology:\n  latencyMs:\n    a: {FR: 1, fr: 2}\n",
            "topology.latencyMs.a.fr",
            "differ only by case",
        ),
        (
            "carbonWindow:\n  lease: {name: ecoplace-ocm-scores}\n",
            "carbonWindow.lease.name",
            "is the OCM publisher's Lease",
        ),
        (
            "carbonWindow:\n  slotMinutes: 0\n",
            "carbonWindow.slotMinutes",
            "1 … 1440",
        ),
        (
            "carbonWindow:\n  minSavingPercent: 100\n",
            "carbonWindow.minSavingPercent",
            "0 ≤ p < 100",
        ),
    ] {
        let e = Config::parse(yaml, "x.yaml").unwrap_err().to_string();
        assert!(e.contains(&format!("x.yaml: {path}: ")), "{yaml}: {e}");
        assert!(e.contains(says), "{yaml}: {e}");
    }
    let ok = "extender:\n  listen: \"[::]:8888\"\n  probesListen: 0.0.0.0:8081\ntelemetry:\n  prometheus:\n    url: https://thanos-query.monitoring:9090/\n";
    assert!(Config::parse(ok, "x.yaml").is_ok());
}

#[test]
fn a_partial_carbon_window_lease_keeps_its_own_name() {
    let c = Config::parse("carbonWindow:\n  lease: {namespace: batch}\n", "x.yaml").unwrap();
    assert_eq!(c.carbon_window.lease.name, "ecoplace-carbon-window");
    assert_eq!(c.carbon_window.lease.namespace.as_deref(), Some("batch"));
    assert_eq!(c.carbon_window.lease.duration_seconds, 15);
    let c = Config::parse("ocm:\n  lease: {namespace: hub}\n", "x.yaml").unwrap();
    assert_eq!(c.ocm.lease.name, "ecoplace-ocm-scores");
}
