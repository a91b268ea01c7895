//! The documented example configuration parses and means what its comments say.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use scheduler::config::Config;

#[test]
fn documented_example_parses() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ecoplace.example.yaml");
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.extender.deadline_ms, 250);
    assert_eq!(
        config
            .topology
            .carbon_zones
            .get("eu-west-3")
            .map(String::as_str),
        Some("FR")
    );
    assert_eq!(config.carbon.static_g_per_kwh.get("FR"), Some(&60.0));
    assert_eq!(
        config.power.node_types["m7g.4xlarge"].power_cap_watts,
        Some(220.0)
    );
    assert_eq!(
        config.policy.namespaces["frontend"].max_latency_ms,
        Some(20.0)
    );
}
