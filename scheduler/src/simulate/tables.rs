//! The simulation report's content as plain data, with no rendering: the results, details,
//! cluster and Pareto tables, the scenario facts, the policy lines and the legends that
//! `document` arranges into one report `Document` and `output` prints to the terminal.

use super::pareto::{ParetoSummary, without_plan};
use super::{Policy, PolicyResult, Report};
use crate::report::{Table, num};

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
        "service replica-steps (one replica for 5 min) served from beyond the latency SLO or not running for lack of a node, plus batch jobs that missed their deadline; a new service's replicas waiting in the first 600 s after its creation (its rollout, a Deployment's default progressDeadlineSeconds) are not violations: the details' `pending (rollout)`",
    ),
    (
        "p50/p95 ms",
        "round-trip latency from a service's users to the cluster of each running replica, over all replica-steps",
    ),
    (
        "migrations",
        "running pods moved to another node (rebalancing, autoscaler drains); each restarts, costs its energy, and counts against the SLO while no replica of its service serves",
    ),
    (
        "node-h",
        "hours of awake nodes, summed over nodes (24 nodes always on for a week = 4032)",
    ),
    (
        "vs autoscaler",
        "change against `autoscaler` (kube-scheduler + cluster-autoscaler scale-down, the fleet most operators already run) on the same trace, in percent; negative = less",
    ),
    (
        "vs default",
        "change against the `default` policy (never consolidates) on the same trace, in percent; negative = less (−47.9 % = 47.9 % less than `default`)",
    ),
];

/// What the charts and the Pareto table show.
pub const CHART_LEGEND: &[(&str, &str)] = &[
    (
        "power kW",
        "hourly mean of the fleet's platform power under the policy (awake nodes only)",
    ),
    (
        "carbon rate kgCO2e/h",
        "hourly mean of each awake node's power × its cluster's grid intensity",
    ),
    (
        "intensity gCO2e/kWh",
        "the real 2020 grid carbon intensity of each cluster's zone, hourly mean",
    ),
    (
        "mean latency ms",
        "a plan's round-trip latency from each service replica's users, averaged over replicas",
    ),
    (
        "carbon gCO2e (horizon)",
        "a plan's emissions over the planning horizon: predicted power of the placed replicas plus the idle power of the nodes it wakes, × intensity",
    ),
];

/// A change in percent, signed: `−47.9 %` for 47.9 % less.
pub fn pct(change: Option<f64>) -> String {
    change.map_or_else(
        || "-".to_string(),
        |p| format!("{} %", optimizer::plan::signed(p, 1)),
    )
}

/// The policies' results in report order, with their names.
pub fn rows(report: &Report) -> impl Iterator<Item = (&str, &PolicyResult)> {
    report
        .order
        .iter()
        .filter_map(|n| report.policies.get(n).map(|r| (n.as_str(), r)))
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
        ("Decisions knew".into(), s.decisions.clone()),
    ]
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
            "vs autoscaler",
            "vs default",
            "carbon kgCO2e",
            "vs autoscaler",
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
                    pct(r.energy_vs_autoscaler_pct),
                    pct(r.energy_change_pct),
                    format!("{:.1}", r.carbon_kg),
                    pct(r.carbon_vs_autoscaler_pct),
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
            "pending (rollout)",
            "batch jobs",
            "deadline misses",
            "batch held (mean h)",
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
                    format!("{} ({})", r.replica_steps_pending, r.replica_steps_rollout),
                    r.batch_jobs.to_string(),
                    r.batch_deadline_misses.to_string(),
                    format!("{} ({:.1})", r.batch_held, r.batch_mean_hold_h),
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

/// The Pareto front's plans, then each MILP policy's plan of the same instance.
pub fn pareto_table(p: &ParetoSummary) -> Table {
    Table {
        head: strings(&[
            "plan",
            "ε total latency ms",
            "mean latency ms",
            "carbon gCO2e (horizon)",
            "energy Wh (horizon)",
            "nodes used",
        ]),
        left: 1,
        rows: p
            .front
            .iter()
            .chain(&p.policies)
            .map(|v| {
                vec![
                    v.source.clone(),
                    num(v.epsilon_ms, 1),
                    format!("{:.2}", v.mean_latency_ms),
                    format!("{:.1}", v.carbon_g),
                    format!("{:.1}", v.energy_wh),
                    v.nodes_used.to_string(),
                ]
            })
            .collect(),
    }
}

/// What the Pareto section lacks: the sweep's errors and the policies with no plan to mark.
pub fn pareto_notes(p: &ParetoSummary, order: &[String]) -> Vec<String> {
    let heuristics = without_plan(&policies(order));
    let mut notes = p.errors.clone();
    if !heuristics.is_empty() {
        notes.push(format!(
            "{} place pod by pod without the MILP, so they have no plan on this chart",
            heuristics.join(", ")
        ));
    }
    notes
}

/// One line per policy in report order: its name and what it does.
pub fn policy_lines(order: &[String]) -> Vec<String> {
    policies(order)
        .iter()
        .map(|p| format!("`{}`: {}", p.name(), p.describe()))
        .collect()
}

/// Every figure of the report with its meaning: the results' legend, then the charts'.
pub fn legend() -> Vec<(String, String)> {
    LEGEND
        .iter()
        .chain(CHART_LEGEND)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The known policies among `order`'s names, in that order.
fn policies(order: &[String]) -> Vec<Policy> {
    order
        .iter()
        .filter_map(|n| Policy::ALL.iter().copied().find(|p| p.name() == n))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
