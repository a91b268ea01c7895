//! The simulation report as a terminal table, Markdown, CSV and JSON.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::policy::Policy;
use super::{Fleet, PolicyResult, PolicyRun, Report};
use crate::report::{Table, markdown_blocks, md_table};

/// What every reported figure means (printed under the table and in report.md).
pub const LEGEND: &[(&str, &str)] = &[
    (
        "energy kWh",
        "fleet energy over the whole period: the platform power of every awake node (idle + load, PEAKS curve of its type) × time, summed; asleep nodes draw 0 W; PUE 1",
    ),
    (
        "carbon kgCO2e",
        "each node's energy in each 5-min step × its cluster's grid intensity in that step (real 2020 hourly data), summed",
    ),
    (
        "g/kWh",
        "carbon ÷ energy: the grid intensity the policy's energy was drawn at",
    ),
    (
        "SLO viol.",
        "service replica-steps (one replica for 5 min) served from beyond the latency SLO or not running for lack of a node, plus batch jobs that missed their deadline",
    ),
    (
        "p50/p95 ms",
        "round-trip latency from a service's users to the cluster of each running replica, over all replica-steps",
    ),
    (
        "migrations",
        "running pods moved to another node by rebalancing",
    ),
    (
        "node-h",
        "hours of awake nodes, summed over nodes (24 nodes always on for a week = 4032)",
    ),
    (
        "vs default",
        "change against the `default` policy on the same trace, in percent; negative = less (−47.9 % = 47.9 % less than `default`)",
    ),
];

/// A change in percent, signed: `−47.9 %` for 47.9 % less.
fn pct(change: Option<f64>) -> String {
    change.map_or_else(
        || "-".to_string(),
        |p| format!("{} %", optimizer::plan::signed(p, 1)),
    )
}

fn rows(report: &Report) -> impl Iterator<Item = (&str, &PolicyResult)> {
    report
        .order
        .iter()
        .filter_map(|n| report.policies.get(n).map(|r| (n.as_str(), r)))
}

/// The terminal report: scenario, one line per policy, and the legend.
pub fn table(report: &Report) -> String {
    let s = &report.scenario;
    let mut out = String::new();
    let days = (s.end - s.start).num_seconds() as f64 / 86_400.0;
    let _ = writeln!(
        out,
        "ecoplace simulate: {days:.1} days from {} to {}, {}-min steps, seed {}",
        s.start.format("%Y-%m-%d %H:%M UTC"),
        s.end.format("%Y-%m-%d %H:%M UTC"),
        s.step_s / 60,
        s.seed
    );
    let _ = writeln!(
        out,
        "fleet: {}: {} nodes, {} cores; trace: {}: {} services, {} batch jobs",
        s.fleet, s.nodes, s.cores, s.trace, s.services, s.batch_jobs
    );
    let _ = writeln!(
        out,
        "load: the trace requests {:.1} % of the fleet's cores on average, {:.1} % at its peak",
        s.mean_requested_pct, s.peak_requested_pct
    );
    for c in &s.clusters {
        let _ = writeln!(
            out,
            "  cluster {:<6} zone {:<4} {:>3} nodes {:>5} cores, grid {:>6.1} gCO2e/kWh on average over the period",
            c.name, c.zone, c.nodes, c.cores, c.mean_g_per_kwh
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<9} {:>10} {:>10} {:>13} {:>10} {:>7} {:>9} {:>6} {:>6} {:>10} {:>8}",
        "policy",
        "energy kWh",
        "vs default",
        "carbon kgCO2e",
        "vs default",
        "g/kWh",
        "SLO viol.",
        "p50 ms",
        "p95 ms",
        "migrations",
        "node-h"
    );
    for (name, r) in rows(report) {
        let _ = writeln!(
            out,
            "{:<9} {:>10.1} {:>10} {:>13.1} {:>10} {:>7.1} {:>9} {:>6.1} {:>6.1} {:>10} {:>8.1}",
            name,
            r.energy_kwh,
            pct(r.energy_change_pct),
            r.carbon_kg,
            pct(r.carbon_change_pct),
            r.mean_intensity_g_per_kwh,
            r.slo_violations,
            r.p50_latency_ms,
            r.p95_latency_ms,
            r.migrations,
            r.active_node_hours
        );
    }
    let _ = writeln!(out);
    for (k, v) in LEGEND {
        let _ = writeln!(out, "  {k:<14} {v}");
    }
    out
}

/// The clusters of the scenario: zone, size and mean grid intensity.
pub fn cluster_table(report: &Report) -> Table {
    Table {
        head: strings(&["cluster", "zone", "nodes", "cores", "mean grid gCO2e/kWh"]),
        left: 2,
        rows: report
            .scenario
            .clusters
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.zone.clone(),
                    c.nodes.to_string(),
                    c.cores.to_string(),
                    format!("{:.1}", c.mean_g_per_kwh),
                ]
            })
            .collect(),
    }
}

/// The policies side by side: energy, carbon, SLOs, latency, migrations, node-hours.
pub fn results_table(report: &Report) -> Table {
    Table {
        head: strings(&[
            "policy",
            "energy kWh",
            "vs default",
            "carbon kgCO2e",
            "vs default",
            "gCO2e/kWh",
            "SLO violations",
            "p50 ms",
            "p95 ms",
            "migrations",
            "node-hours",
        ]),
        left: 1,
        rows: rows(report)
            .map(|(name, r)| {
                vec![
                    name.to_string(),
                    format!("{:.1}", r.energy_kwh),
                    pct(r.energy_change_pct),
                    format!("{:.1}", r.carbon_kg),
                    pct(r.carbon_change_pct),
                    format!("{:.1}", r.mean_intensity_g_per_kwh),
                    r.slo_violations.to_string(),
                    format!("{:.1}", r.p50_latency_ms),
                    format!("{:.1}", r.p95_latency_ms),
                    r.migrations.to_string(),
                    format!("{:.1}", r.active_node_hours),
                ]
            })
            .collect(),
    }
}

/// The policies' detailed counts.
pub fn details_table(report: &Report) -> Table {
    Table {
        head: strings(&[
            "policy",
            "replica-steps wanted",
            "over SLO",
            "pending",
            "batch jobs",
            "deadline misses",
            "pods started",
            "wakes",
            "power-downs",
            "MILP solves (failed)",
            "max request ratio",
        ]),
        left: 1,
        rows: rows(report)
            .map(|(name, r)| {
                vec![
                    name.to_string(),
                    r.replica_steps_wanted.to_string(),
                    r.replica_steps_over_slo.to_string(),
                    r.replica_steps_pending.to_string(),
                    r.batch_jobs.to_string(),
                    r.batch_deadline_misses.to_string(),
                    r.pods_started.to_string(),
                    r.node_wakes.to_string(),
                    r.node_power_downs.to_string(),
                    format!("{} ({})", r.milp_solves, r.milp_failures),
                    format!("{:.3}", r.max_request_ratio),
                ]
            })
            .collect(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn md(out: &mut String, t: &Table) {
    let head: Vec<&str> = t.head.iter().map(String::as_str).collect();
    md_table(out, &head, t.left, t.rows.iter().cloned());
}

/// The scenario in key–value lines (the reports' header).
pub fn facts(report: &Report, command: &str) -> Vec<(String, String)> {
    let s = &report.scenario;
    vec![
        ("Command".into(), format!("`{command}`")),
        (
            "Period".into(),
            format!(
                "{} to {} ({}-minute steps), seed {}",
                s.start.to_rfc3339(),
                s.end.to_rfc3339(),
                s.step_s / 60,
                s.seed
            ),
        ),
        (
            "Fleet".into(),
            format!("{}: {} nodes, {} cores", s.fleet, s.nodes, s.cores),
        ),
        (
            "Trace".into(),
            format!(
                "{}: {} services, {} batch jobs",
                s.trace, s.services, s.batch_jobs
            ),
        ),
        (
            "Load".into(),
            format!(
                "the trace requests {:.1} % of the fleet's cores on average, {:.1} % at its peak",
                s.mean_requested_pct, s.peak_requested_pct
            ),
        ),
        ("Decisions priced with".into(), s.power_model.clone()),
    ]
}

/// The Markdown report.
pub fn markdown(report: &Report, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ecoplace simulate\n");
    let facts = facts(report, command);
    let _ = writeln!(out, "{}: {}\n", facts[0].0, facts[0].1);
    for (k, v) in &facts[1..] {
        let _ = writeln!(out, "- {k}: {v}");
    }
    out.push('\n');
    md(&mut out, &cluster_table(report));
    let _ = writeln!(out, "\n## Results\n");
    md(&mut out, &results_table(report));
    let _ = writeln!(out, "\n### Details\n");
    md(&mut out, &details_table(report));
    if let Some(p) = &report.pareto {
        out.push('\n');
        out.push_str(&markdown_blocks(&super::document::pareto_blocks(
            p,
            &report.order,
        )));
    }
    let _ = writeln!(out, "\n## Policies\n");
    for name in &report.order {
        if let Some(p) = Policy::ALL.iter().find(|p| p.name() == name) {
            let _ = writeln!(out, "- `{name}`: {}", p.describe());
        }
    }
    let _ = writeln!(out, "\n## What the figures mean\n");
    for (k, v) in LEGEND {
        let _ = writeln!(out, "- **{k}**: {v}");
    }
    out
}

/// One CSV row: a policy's scalar figures.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    policy: &'a str,
    energy_kwh: f64,
    carbon_kg: f64,
    slo_violations: u64,
    p50_latency_ms: f64,
    p95_latency_ms: f64,
    migrations: u64,
    active_node_hours: f64,
    energy_change_pct: Option<f64>,
    carbon_change_pct: Option<f64>,
    mean_intensity_g_per_kwh: f64,
    replica_steps_over_slo: u64,
    replica_steps_pending: u64,
    batch_deadline_misses: u64,
}

/// The CSV report: one row per policy.
pub fn csv(report: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for (name, r) in rows(report) {
        w.serialize(CsvRow {
            policy: name,
            energy_kwh: r.energy_kwh,
            carbon_kg: r.carbon_kg,
            slo_violations: r.slo_violations,
            p50_latency_ms: r.p50_latency_ms,
            p95_latency_ms: r.p95_latency_ms,
            migrations: r.migrations,
            active_node_hours: r.active_node_hours,
            energy_change_pct: r.energy_change_pct,
            carbon_change_pct: r.carbon_change_pct,
            mean_intensity_g_per_kwh: r.mean_intensity_g_per_kwh,
            replica_steps_over_slo: r.replica_steps_over_slo,
            replica_steps_pending: r.replica_steps_pending,
            batch_deadline_misses: r.batch_deadline_misses,
        })?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

/// The JSON report (`policies.<name>.energy_kwh`, ... are stable keys).
pub fn json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// Writes report.md, report.html, results.csv and results.json into `dir` (created if
/// missing); the HTML charts need `runs` recorded with `Settings::record_steps`.
pub fn write_all(
    report: &Report,
    runs: &[PolicyRun],
    fleet: &Fleet,
    dir: &Path,
    command: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
    };
    write("report.md", markdown(report, command))?;
    write(
        "report.html",
        super::document::document(report, runs, fleet, command).html()?,
    )?;
    write("results.csv", csv(report)?)?;
    write("results.json", json(report)?)?;
    Ok(())
}
