//! `ecoplace simulate`: replays a week of services and batch jobs on a fleet under each
//! placement policy, through the production decision code (`optimizer::score_targets`
//! per pod, `optimizer::plan` for batch rounds and rebalancing), and reports energy,
//! carbon, SLOs, latency and migrations per policy. Deterministic for a seed.
//! Model and formats: docs/simulate.md. It may import `report` (the `Document` report.md
//! and report.html are rendered from) and nothing else in the crate.

pub mod document;
pub mod engine;
pub mod fleet;
pub mod forecast;
pub mod output;
pub mod pareto;
pub mod policy;
pub mod results;
pub mod sweep;
pub mod tables;
pub mod trace;

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use optimizer::power::CurvePowerModel;
use serde::Serialize;

pub use engine::{Settings, Sim, StepRecord};
pub use fleet::Fleet;
pub use forecast::Forecast;
pub use policy::Policy;
pub use results::{Counters, PolicyResult};
pub use trace::{GeneratorConfig, Kind, TraceWorkload};

/// Everything one simulation needs.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The hardware, network and carbon curves.
    pub fleet: Fleet,
    /// The workloads, sorted by arrival.
    pub trace: Vec<TraceWorkload>,
    /// Where the trace came from (for the report).
    pub trace_origin: String,
    /// Seed of the generated parts.
    pub seed: u64,
    /// How the simulation steps.
    pub settings: Settings,
    /// Policies to compare, in report order.
    pub policies: Vec<Policy>,
}

/// What a scenario is, in figures (the report's header).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Fleet origin.
    pub fleet: String,
    /// Trace origin.
    pub trace: String,
    /// Seed.
    pub seed: u64,
    /// First instant.
    pub start: DateTime<Utc>,
    /// End of the period.
    pub end: DateTime<Utc>,
    /// Step length, seconds.
    pub step_s: i64,
    /// Nodes.
    pub nodes: usize,
    /// Allocatable cores of the fleet.
    pub cores: f64,
    /// Per cluster: zone, nodes, cores, mean carbon intensity over the period.
    pub clusters: Vec<ClusterSummary>,
    /// Services in the trace.
    pub services: usize,
    /// Batch jobs in the trace.
    pub batch_jobs: usize,
    /// CPU the trace requests (wanted service replicas, batch jobs as if started on
    /// arrival), mean over the steps, percent of the fleet's cores.
    pub mean_requested_pct: f64,
    /// The same at the busiest step, percent.
    pub peak_requested_pct: f64,
    /// Power model the policies decide with.
    pub power_model: String,
    /// What decisions knew of the future and what waking and moving cost.
    pub decisions: String,
}

/// One cluster in the report header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    /// Cluster name.
    pub name: String,
    /// Carbon zone.
    pub zone: String,
    /// Nodes.
    pub nodes: usize,
    /// Allocatable cores.
    pub cores: f64,
    /// Time-weighted mean grid intensity over the period, gCO2e/kWh.
    pub mean_g_per_kwh: f64,
}

/// The result of a simulation: the scenario and one result per policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: Summary,
    /// Policy names in the order they were given.
    pub order: Vec<String>,
    /// Figures per policy name.
    pub policies: BTreeMap<String, PolicyResult>,
    /// The carbon–latency Pareto front at the busiest hour (computed for written reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pareto: Option<pareto::ParetoSummary>,
}

/// One policy's run, with its per-step records when asked for.
#[derive(Debug, Clone)]
pub struct PolicyRun {
    /// The policy.
    pub policy: Policy,
    /// Raw counters.
    pub counters: Counters,
    /// Per-step node figures (empty unless `settings.record_steps`).
    pub steps: Vec<StepRecord>,
}

/// The decision power model: each node type's true platform curve (as a fit of its
/// Kepler history would give).
pub fn power_model(fleet: &Fleet) -> CurvePowerModel {
    let mut m = CurvePowerModel::new();
    for t in &fleet.node_types {
        m.insert(
            t.name.clone(),
            optimizer::PowerCurve {
                k0: t.curve.k0,
                k1: t.curve.k1,
                k2: t.curve.k2,
            },
        );
    }
    m
}

/// Runs every policy (one thread each) and returns the runs in policy order.
pub fn run_policies(scenario: &Scenario) -> Result<Vec<PolicyRun>> {
    let regions = scenario.fleet.regions();
    trace::validate(&scenario.trace, &regions)?;
    let power = power_model(&scenario.fleet);
    let runs: Vec<Result<PolicyRun>> = std::thread::scope(|s| {
        let handles: Vec<_> = scenario
            .policies
            .iter()
            .map(|&policy| {
                let power = &power;
                s.spawn(move || {
                    let sim = Sim::new(
                        &scenario.fleet,
                        &scenario.trace,
                        &scenario.settings,
                        policy,
                        power,
                    )
                    .run()?;
                    Ok(PolicyRun {
                        policy,
                        counters: sim.counters,
                        steps: sim.steps,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a policy's simulation panicked")))
            })
            .collect()
    });
    runs.into_iter().collect()
}

/// Runs the scenario and builds its report.
pub fn simulate(scenario: &Scenario) -> Result<(Report, Vec<PolicyRun>)> {
    let runs = run_policies(scenario)?;
    let report = report(scenario, &runs)?;
    Ok((report, runs))
}

/// The report of finished runs: figures per policy and changes against `default`.
pub fn report(scenario: &Scenario, runs: &[PolicyRun]) -> Result<Report> {
    let fleet = &scenario.fleet;
    let s = &scenario.settings;
    let names: Vec<String> = fleet.clusters.iter().map(|c| c.name.clone()).collect();
    let step_h = s.step_s as f64 / 3600.0;
    let mut policies: BTreeMap<String, PolicyResult> = runs
        .iter()
        .map(|r| {
            let name = r.policy.name().to_string();
            (
                name,
                PolicyResult::from_counters(&r.counters, &names, step_h),
            )
        })
        .collect();
    if let Some(default) = policies.get(Policy::Default.name()).cloned() {
        for r in policies.values_mut() {
            r.set_changes(&default);
        }
    }
    if let Some(autoscaler) = policies.get(Policy::Autoscaler.name()).cloned() {
        for r in policies.values_mut() {
            r.set_autoscaler_changes(&autoscaler);
        }
    }
    let mut clusters = Vec::new();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let nodes: Vec<usize> = (0..fleet.nodes.len())
            .filter(|&n| fleet.nodes[n].cluster == ci)
            .collect();
        clusters.push(ClusterSummary {
            name: c.name.clone(),
            zone: c.carbon_zone.clone(),
            nodes: nodes.len(),
            cores: nodes.iter().map(|&n| fleet.node_type(n).cores).sum(),
            mean_g_per_kwh: results::round(
                fleet.carbon.mean_over(&c.carbon_zone, s.start, s.end())?,
                1,
            ),
        });
    }
    let count = |k: Kind| scenario.trace.iter().filter(|w| w.kind == k).count();
    let (mean, peak) = requested_cores(scenario);
    let pct = |cores: f64| results::round(100.0 * cores / fleet.total_cores(), 1);
    Ok(Report {
        scenario: Summary {
            fleet: fleet.origin.clone(),
            trace: scenario.trace_origin.clone(),
            seed: scenario.seed,
            start: s.start,
            end: s.end(),
            step_s: s.step_s,
            nodes: fleet.nodes.len(),
            cores: fleet.total_cores(),
            clusters,
            services: count(Kind::Service),
            batch_jobs: count(Kind::Batch),
            mean_requested_pct: pct(mean),
            peak_requested_pct: pct(peak),
            power_model: "PEAKS curves of each node type (platform power)".into(),
            decisions: format!(
                "carbon forecast {}; a woken node boots {:.0} s at idle power before it takes pods; a moved replica restarts in {:.0} s and costs {:.0} J",
                s.forecast.describe(),
                s.boot_s,
                s.restart_s,
                s.migration_j
            ),
        },
        order: runs.iter().map(|r| r.policy.name().to_string()).collect(),
        policies,
        pareto: None,
    })
}

/// Mean and peak CPU cores the trace requests over the steps (policy-independent).
fn requested_cores(scenario: &Scenario) -> (f64, f64) {
    let s = &scenario.settings;
    let (mut sum, mut peak) = (0.0, 0.0f64);
    for k in 0..s.steps {
        let t = s.start + chrono::Duration::seconds(s.step_s * k as i64);
        let mut cores = 0.0;
        for w in &scenario.trace {
            if w.arrive > t {
                continue;
            }
            cores += match w.kind {
                Kind::Service if w.depart.is_none_or(|d| t < d) => {
                    w.cpu * f64::from(trace::service_replicas(w, t))
                }
                Kind::Batch if t < w.arrive + trace::secs(w.duration_s.unwrap_or(0.0)) => {
                    w.cpu * f64::from(w.max_replicas)
                }
                _ => 0.0,
            };
        }
        sum += cores;
        peak = peak.max(cores);
    }
    (sum / s.steps.max(1) as f64, peak)
}
