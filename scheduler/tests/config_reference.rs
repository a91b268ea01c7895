//! docs/configuration.md is exactly what `ecoplace config reference` prints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use scheduler::config::reference;

#[test]
fn committed_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = reference::markdown();
    assert!(
        committed == generated,
        "docs/configuration.md is out of date: regenerate it with\n  \
         cargo run -p scheduler -- config reference > docs/configuration.md"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(["config", "reference"])
        .output()
        .expect("running ecoplace");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), generated);
}

#[test]
fn reference_lists_every_key_with_its_default() {
    let md = reference::markdown();
    for row in [
        "| `extender.deadlineMs` | integer ≥ 0 | `250` |",
        "| `telemetry.prometheus.bearerTokenFile` | string (optional) | — |",
        "| `telemetry.prometheus.timeoutSeconds` | number | `5.0` |",
        "| `power.nodeTypes.<name>.idleWatts` | number |",
        "| `carbon.prometheus.stepSeconds` | number | `300.0` |",
        "| `policy.objective` | string | `\"balanced\"` |",
    ] {
        assert!(md.contains(row), "missing {row}\n{md}");
    }
}
