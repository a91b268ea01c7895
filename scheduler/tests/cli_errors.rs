//! How the `ecoplace` binary reports a user's mistake: `error: ` and the chain of causes on
//! one line, status 1, no backtrace even with `RUST_BACKTRACE=1`; usage errors exit 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn ecoplace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap()
}

#[test]
fn a_mistake_prints_the_error_chain_on_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-fleet.yaml");
    let out = ecoplace(&["simulate", "--fleet", &missing.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: cannot read fleet file {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    for noise in ["backtrace", "Backtrace", "Caused by", "Error: "] {
        assert!(!stderr.contains(noise), "`{noise}` in {stderr}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn a_usage_error_exits_2() {
    let out = ecoplace(&["simulate", "--no-such-flag"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn a_bad_trace_names_the_column_and_a_bad_fleet_file_its_path_once() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(
        &trace,
        "name,kind,arrive,depart,cpu,memory_gib,min_replicas,max_replicas,usage,region,utc_offset_h,slo_ms,duration_s,deadline\n\
         web,service,2020-03-02T00:00:00Z,,two,1,1,2,0.5,DE,1,10,,\n",
    )
    .unwrap();
    let out = ecoplace(&["simulate", "--trace", &trace.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: trace {} line 2, column `cpu` (`two`): invalid float literal\n",
            trace.display()
        )
    );

    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(&fleet, "nodeTypes:\n- name: std\n  cores: many\n").unwrap();
    let out = ecoplace(&["simulate", "--fleet", &fleet.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let path = fleet.display().to_string();
    assert_eq!(stderr.matches(&path).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("nodeTypes[0].cores").count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: fleet file {path}: nodeTypes[0].cores: invalid type: string \"many\""
        )),
        "{stderr}"
    );
}
