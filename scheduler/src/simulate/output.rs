//! Writes the simulation's outputs: the terminal table, and into `--out` report.md and
//! report.html (both rendered from the one `document::document`), results.csv and
//! results.json.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::document::document;
use super::tables::{LEGEND, pct, rows};
use super::{Fleet, PolicyRun, Report};

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
    let _ = writeln!(out, "decisions knew: {}", s.decisions);
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
        "{:<14} {:>10} {:>13} {:>10} {:>13} {:>13} {:>10} {:>7} {:>9} {:>6} {:>6} {:>10} {:>8}",
        "policy",
        "energy kWh",
        "vs autoscaler",
        "vs default",
        "carbon kgCO2e",
        "vs autoscaler",
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
            "{:<14} {:>10.1} {:>13} {:>10} {:>13.1} {:>13} {:>10} {:>7.1} {:>9} {:>6.1} {:>6.1} {:>10} {:>8.1}",
            name,
            r.energy_kwh,
            pct(r.energy_vs_autoscaler_pct),
            pct(r.energy_change_pct),
            r.carbon_kg,
            pct(r.carbon_vs_autoscaler_pct),
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
    energy_vs_autoscaler_pct: Option<f64>,
    carbon_vs_autoscaler_pct: Option<f64>,
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
            energy_vs_autoscaler_pct: r.energy_vs_autoscaler_pct,
            carbon_vs_autoscaler_pct: r.carbon_vs_autoscaler_pct,
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

/// Writes report.md, report.html, results.csv and results.json into `dir` (created if missing).
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
    let doc = document(report, runs, fleet, command);
    write("report.md", doc.markdown())?;
    write("report.html", doc.html()?)?;
    write("results.csv", csv(report)?)?;
    write("results.json", json(report)?)?;
    Ok(())
}
