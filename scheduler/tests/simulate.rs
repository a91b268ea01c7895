//! Simulator invariants on a short generated scenario, and the `ecoplace simulate` CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use chrono::{Duration, TimeZone, Utc};
use kepler_client::accounting::JOULES_PER_KWH;
use scheduler::simulate::policy::Lifecycle;
use scheduler::simulate::trace::{self, Kind};
use scheduler::simulate::{Fleet, GeneratorConfig, Policy, PolicyRun, Scenario, Settings};

fn scenario(seed: u64, days: f64) -> Scenario {
    let start = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
    let fleet = Fleet::embedded(seed).expect("embedded fleet");
    let trace = trace::generate(&GeneratorConfig::default(), seed, start, days);
    let mut settings = Settings::new(start, days);
    settings.record_steps = true;
    Scenario {
        fleet,
        trace,
        trace_origin: "test".into(),
        seed,
        settings,
        policies: Policy::ALL.to_vec(),
    }
}

fn run(s: &Scenario) -> (scheduler::simulate::Report, Vec<PolicyRun>) {
    scheduler::simulate::simulate(s).expect("simulation runs")
}

#[test]
fn invariants_hold_for_every_policy() {
    let s = scenario(7, 0.5);
    let (report, runs) = run(&s);
    let step_s = s.settings.step_s as f64;
    assert_eq!(runs.len(), Policy::ALL.len());
    for r in &runs {
        let name = r.policy.name();
        let c = &r.counters;
        assert_eq!(r.steps.len(), s.settings.steps, "{name}");

        // No step over capacity, on any node, CPU or memory.
        for step in &r.steps {
            for (n, node) in s.fleet.nodes.iter().enumerate() {
                let ty = &s.fleet.node_types[node.node_type];
                assert!(
                    step.node_cpu_requested[n] <= ty.cores + 1e-9,
                    "{name} {}",
                    step.at
                );
                assert!(
                    step.node_memory_requested_gib[n] <= ty.memory_gib + 1e-9,
                    "{name}"
                );
                // Asleep nodes draw nothing; awake nodes at least their idle power.
                let w = step.node_watts[n];
                assert!(w == 0.0 || w >= ty.idle_watts() - 1e-9, "{name}: {w} W");
                if step.node_cpu_requested[n] > 0.0 {
                    assert!(w > 0.0, "{name}: a node with pods is awake");
                }
            }
        }
        assert!(c.max_request_ratio <= 1.0 + 1e-9, "{name}");

        // Energy is the integral of fleet power over time: exactly the step sum, and the
        // kepler-client integrator over the piecewise-constant power agrees.
        let fleet_watts: Vec<f64> = r.steps.iter().map(|x| x.node_watts.iter().sum()).collect();
        // Moves cost their energy on top of the nodes' power.
        let sum_j: f64 = fleet_watts.iter().map(|w| w * step_s).sum::<f64>() + c.migration_j;
        assert!((sum_j - c.energy_j).abs() <= 1e-6 * c.energy_j, "{name}");
        let start = s.settings.start;
        let simpson = kepler_client::simulated::integrate(start, s.settings.end(), 1, |t, out| {
            let k = ((t - start).num_milliseconds() as f64 / 1000.0 / step_s) as usize;
            out[0] = fleet_watts[k.min(fleet_watts.len() - 1)];
        })[0];
        assert!(
            (simpson + c.migration_j - c.energy_j).abs() <= 0.005 * c.energy_j,
            "{name}: {simpson} vs {}",
            c.energy_j
        );
        let carbon: f64 = r
            .steps
            .iter()
            .map(|x| {
                x.node_watts
                    .iter()
                    .zip(&s.fleet.nodes)
                    .map(|(w, n)| w * step_s / JOULES_PER_KWH * x.cluster_intensity[n.cluster])
                    .sum::<f64>()
            })
            .sum::<f64>()
            + c.migration_carbon_g;
        assert!((carbon - c.carbon_g).abs() <= 1e-6 * c.carbon_g, "{name}");
        let kwh = report.policies[name].energy_kwh;
        assert!((kwh - c.energy_j / JOULES_PER_KWH).abs() < 1e-3, "{name}");

        // Every SLO is counted: every wanted replica-step is ok, over SLO, pending (no
        // node, its node booting, or restarting with no replica of its service serving) or
        // restarting while another replica serves; the wanted ones are what the trace's
        // autoscaling asks for.
        assert_eq!(
            c.replica_steps_wanted,
            c.replica_steps_ok
                + c.replica_steps_over_slo
                + c.replica_steps_pending
                + c.replica_steps_restarting_covered,
            "{name}"
        );
        assert!(
            c.replica_steps_booting + c.replica_steps_restarting <= c.replica_steps_pending,
            "{name}"
        );
        let mut wanted = 0u64;
        for k in 0..s.settings.steps {
            let t = start + Duration::seconds(s.settings.step_s * k as i64);
            for w in s.trace.iter().filter(|w| w.kind == Kind::Service) {
                if w.arrive <= t && w.depart.is_none_or(|d| t < d) {
                    wanted += u64::from(trace::service_replicas(w, t));
                }
            }
        }
        assert_eq!(c.replica_steps_wanted, wanted, "{name}");
        let latency_samples: u64 = c.latency_us.values().sum();
        assert_eq!(
            latency_samples,
            c.replica_steps_ok + c.replica_steps_over_slo,
            "{name}"
        );
        // Jobs are submitted at the first step starting at or after their arrival.
        let last_step = s.settings.end() - Duration::seconds(s.settings.step_s);
        let jobs = s
            .trace
            .iter()
            .filter(|w| w.kind == Kind::Batch && w.arrive <= last_step)
            .count() as u64;
        assert_eq!(c.batch_jobs, jobs, "{name}");
        assert_eq!(
            c.batch_jobs,
            c.batch_on_time + c.batch_late + c.batch_open,
            "{name}"
        );
        let r = &report.policies[name];
        assert_eq!(
            r.slo_violations,
            c.replica_steps_over_slo + c.replica_steps_pending + c.batch_late,
            "{name}"
        );
    }
    // Only the MILP policies and cluster-autoscaler drains move pods; the autoscaler
    // powers nodes down.
    for r in &runs {
        if !r.policy.uses_milp() && r.policy.lifecycle() == Lifecycle::EmptyNodes {
            assert_eq!(r.counters.migrations, 0, "{}", r.policy.name());
        }
        if r.policy == Policy::Autoscaler {
            assert!(r.counters.power_downs > 0);
        }
    }
}

#[test]
fn same_seed_gives_identical_output_and_another_seed_differs() {
    let json = |seed| {
        let (report, _) = run(&scenario(seed, 0.25));
        scheduler::simulate::output::json(&report).expect("json")
    };
    let a = json(3);
    assert_eq!(a, json(3));
    assert_ne!(a, json(4));
    let v: serde_json::Value = serde_json::from_str(&a).expect("valid json");
    for p in ["default", "peaks", "energy", "carbon", "balanced"] {
        for key in [
            "energy_kwh",
            "carbon_kg",
            "slo_violations",
            "p95_latency_ms",
            "migrations",
        ] {
            assert!(v["policies"][p][key].is_number(), "policies.{p}.{key}");
        }
    }
}

/// Runs `ecoplace simulate` for a quarter day, seed 5, `default,balanced`, with `extra`
/// arguments; fails the test unless it succeeds, and returns its stdout.
fn simulate_quarter_day(extra: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args([
            "simulate",
            "--days",
            "0.25",
            "--seed",
            "5",
            "--policies",
            "default,balanced",
        ])
        .args(extra)
        .output()
        .expect("ecoplace runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `results.json` written into `dir`.
fn results_json(dir: &std::path::Path) -> serde_json::Value {
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&json).expect("json")
}

#[test]
fn cli_runs_a_short_simulation_and_writes_the_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = simulate_quarter_day(&["--out".as_ref(), dir.path().as_os_str()]);
    for needle in [
        "energy kWh",
        "carbon kgCO2e",
        "default",
        "balanced",
        "SLO viol.",
        "cluster de",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    let v = results_json(dir.path());
    assert!(v["policies"]["balanced"]["carbon_kg"].is_number());
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).expect("results.csv");
    assert!(
        csv.starts_with("policy,energy_kwh,carbon_kg,slo_violations"),
        "{csv}"
    );
    // One sign convention: `vs default` is the change against `default`, negative = less,
    // the same in the table, report.md and results.json (`*_change_pct`).
    let p = &v["policies"];
    for (figure, key) in [
        ("energy_kwh", "energy_change_pct"),
        ("carbon_kg", "carbon_change_pct"),
    ] {
        let (base, got) = (
            p["default"][figure].as_f64().unwrap(),
            p["balanced"][figure].as_f64().unwrap(),
        );
        let change = p["balanced"][key].as_f64().unwrap();
        assert!(
            (change - 100.0 * (got - base) / base).abs() < 0.01,
            "{key} {change}"
        );
        assert!(
            change < 0.0,
            "balanced uses less than default: {key} {change}"
        );
        let shown = format!("−{:.1} %", -change);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("balanced") && l.contains(&shown)),
            "`{shown}` in:\n{stdout}"
        );
        let md = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
        assert!(md.contains(&format!("| {shown} |")), "`{shown}` in:\n{md}");
        assert!(md.contains("negative = less"), "{md}");
    }
    assert!(stdout.contains("negative = less"), "legend in:\n{stdout}");
    assert!(!stdout.contains("+-") && !stdout.contains("−-"), "{stdout}");

    // The written trace replays to the same figures.
    let again = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("trace.csv");
    simulate_quarter_day(&[
        "--trace".as_ref(),
        trace.as_os_str(),
        "--out".as_ref(),
        again.path().as_os_str(),
    ]);
    assert_eq!(results_json(again.path())["policies"], v["policies"]);

    // Bad input is a clear error, not a panic.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(["simulate", "--policies", "default,greenest"])
        .output()
        .expect("ecoplace runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("greenest"));
}

#[test]
fn fleet_file_drives_the_simulation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("fleet.yaml");
    std::fs::write(
        &p,
        "nodeTypes:\n- {name: small, cores: 16, memoryGib: 64, idleWatts: 80, maxWatts: 250}\n- {name: big, cores: 64, memoryGib: 256, idleWatts: 150, maxWatts: 500, curvature: 1.2}\nclusters:\n- {name: north, carbonGPerKwh: 30, nodes: {small: 4, big: 2}}\n- {name: south, carbonZone: DE, nodes: {small: 4, big: 2}}\nlatencyMs:\n  DE: {north: 25, south: 5}\n  FR: {north: 20, south: 10}\n  GB: {north: 10, south: 20}\n",
    )
    .expect("write");
    let fleet = Fleet::from_file(&p).expect("fleet file");
    assert_eq!(fleet.nodes.len(), 12);
    let mut s = scenario(1, 0.1);
    s.fleet = fleet;
    s.policies = vec![Policy::Default, Policy::Carbon];
    let (report, _) = run(&s);
    assert!(report.policies["carbon"].carbon_kg < report.policies["default"].carbon_kg);
}

/// The fenced block after `marker` in docs/simulate.md.
fn doc_block(marker: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/simulate.md"))
        .expect("docs/simulate.md");
    let from = doc.find(marker).expect("marker in docs/simulate.md") + marker.len();
    let rest = &doc[from..];
    let end = rest.find("```").expect("closing fence");
    rest[..end].to_string()
}

#[test]
fn documented_fleet_and_trace_examples_are_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(&fleet, doc_block("```yaml\n")).expect("write");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kepler-client/data/carbon-intensity/fr_2020_hourly.csv"
        ),
        dir.path().join("fr.csv"),
    )
    .expect("copy");
    let fleet = Fleet::from_file(&fleet).expect("documented fleet file");
    assert_eq!(fleet.nodes.len(), 20);
    assert_eq!(fleet.clusters[2].carbon_zone, "static:oslo");

    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, doc_block("```csv\n")).expect("write");
    let rows = trace::read_csv(&trace).expect("documented trace");
    assert_eq!(rows.len(), 2);
    trace::validate(&rows, &fleet.regions()).expect("valid rows");
}

#[test]
fn a_sweep_runs_every_seed_and_season_and_summarises_per_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args([
            "simulate",
            "--days",
            "0.1",
            "--seeds",
            "1..2",
            "--seasons",
            "winter,2020-07-06",
            "--policies",
            "autoscaler,peaks",
            "--forecast",
            "noisy:0.1",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("ecoplace runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 scenarios × 2 policies"), "{stdout}");
    assert!(stdout.contains("noisy"), "the forecast is named: {stdout}");
    assert!(stdout.contains("by time kg"), "{stdout}");
    assert!(stdout.contains("batch share of the saving"), "{stdout}");
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).expect("sweep.csv");
    // Header and 4 scenarios × 2 policies.
    assert_eq!(csv.lines().count(), 9, "{csv}");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sweep.json")).expect("sweep.json"),
    )
    .expect("json");
    let peaks = &v["policies"]["peaks"];
    assert_eq!(peaks["runs"], 4);
    // The attribution adds up to the saving against autoscaler, run by run.
    for row in v["rows"].as_array().expect("rows") {
        if row["policy"] != "peaks" {
            continue;
        }
        let (seed, season) = (&row["seed"], &row["season"]);
        let base = v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["policy"] == "autoscaler" && &r["seed"] == seed && &r["season"] == season)
            .expect("autoscaler row");
        let saved = base["carbon_kg"].as_f64().unwrap() - row["carbon_kg"].as_f64().unwrap();
        let parts = row["saved_by_less_energy_kg"].as_f64().unwrap()
            + row["saved_by_cleaner_energy_kg"].as_f64().unwrap();
        assert!((saved - parts).abs() < 0.01, "{saved} vs {parts}");
        let split =
            row["saved_by_time_kg"].as_f64().unwrap() + row["saved_by_place_kg"].as_f64().unwrap();
        let cleaner = row["saved_by_cleaner_energy_kg"].as_f64().unwrap();
        assert!(
            (split - cleaner).abs() < 0.01,
            "time + place {split} vs cleaner {cleaner}"
        );
        let batch =
            base["batch_carbon_kg"].as_f64().unwrap() - row["batch_carbon_kg"].as_f64().unwrap();
        assert!((row["saved_on_batch_kg"].as_f64().unwrap() - batch).abs() < 0.01);
        assert!(
            row["batch_carbon_kg"].as_f64().unwrap() > 0.0,
            "batch jobs draw power"
        );
        assert!(row["batch_carbon_kg"].as_f64().unwrap() < row["carbon_kg"].as_f64().unwrap());
    }

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(["simulate", "--seeds", "9..3"])
        .output()
        .expect("ecoplace runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--seeds"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ecoplace"))
        .args(["simulate", "--seasons", "monsoon"])
        .output()
        .expect("ecoplace runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("monsoon"));
}

/// `balanced-shift` holds batch jobs for cleaner windows through `optimizer::shift`, on
/// the forecast the decisions read (day-ahead), and no job misses its deadline for it —
/// on three seeds and two seasons, not one tuned scenario.
#[test]
fn shifting_holds_batch_jobs_and_never_misses_a_deadline() {
    for (seed, month) in [(3, 1), (11, 7), (29, 10)] {
        let mut s = scenario(seed, 1.0);
        let start = Utc.with_ymd_and_hms(2020, month, 13, 0, 0, 0).unwrap();
        s.trace = trace::generate(&GeneratorConfig::default(), seed, start, 1.0);
        s.settings = Settings::new(start, 1.0);
        s.policies = vec![Policy::Balanced, Policy::BalancedShift];
        let (report, runs) = run(&s);
        let shift = &report.policies["balanced-shift"];
        assert!(shift.batch_held > 0, "seed {seed}: nothing held");
        assert!(shift.batch_mean_hold_h > 0.0);
        assert_eq!(shift.batch_deadline_misses, 0, "seed {seed}");
        assert_eq!(report.policies["balanced"].batch_held, 0);
        let held = runs
            .iter()
            .find(|r| r.policy == Policy::BalancedShift)
            .unwrap();
        assert_eq!(held.counters.batch_late, 0, "seed {seed}");
        eprintln!(
            "seed {seed}, 2020-{month:02}-13: balanced {:.2} kg, balanced-shift {:.2} kg ({} of {} jobs held {:.1} h on average)",
            report.policies["balanced"].carbon_kg,
            shift.carbon_kg,
            shift.batch_held,
            shift.batch_jobs,
            shift.batch_mean_hold_h
        );
    }
}
