//! The carbon–latency trade-off at one representative instant: the MILP's ε-constraint
//! Pareto front (`optimizer::plan::pareto_front`, latency bounded) over the services
//! running at the busiest hour, on the whole fleet with every node asleep, and where each
//! MILP policy's weights land on the same instance.

use chrono::{DateTime, Duration, Utc};
use optimizer::plan::{Objective, ParetoOptions, Plan, pareto_front};
use optimizer::{Weights, Workload, plan};
use serde::Serialize;

use super::engine::{carbon_outlooks, node_target, workload_of};
use super::trace::{Kind, service_replicas};
use super::{Policy, Scenario, power_model};

/// ε values swept (a handful keeps `simulate` fast).
pub const POINTS: usize = 5;

/// One plan's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanPoint {
    /// Policy name, or `front` for a point of the Pareto front.
    pub source: String,
    /// Latency bound ε of a front point, ms summed over replicas (`None` for policies).
    pub epsilon_ms: Option<f64>,
    /// Mean round-trip latency from each replica's users, ms.
    pub mean_latency_ms: f64,
    /// Emissions over the planning horizon, gCO2e (idle power of woken nodes included).
    pub carbon_g: f64,
    /// Energy over the planning horizon, Wh.
    pub energy_wh: f64,
    /// Nodes the plan uses.
    pub nodes_used: usize,
}

/// The front and the policies' plans at one instant, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParetoSummary {
    /// The instant (the hour with the most requested service CPU).
    pub at: DateTime<Utc>,
    /// Services running then.
    pub services: usize,
    /// Their replicas.
    pub replicas: u32,
    /// Planning horizon (a service pod's expected duration), hours.
    pub horizon_h: f64,
    /// Weights of the objectives minimised under each latency bound.
    pub weights: Weights,
    /// Non-dominated plans, lowest latency first.
    pub front: Vec<PlanPoint>,
    /// Each MILP policy's plan of the same instance.
    pub policies: Vec<PlanPoint>,
    /// Why the front or a policy's plan is missing, if it is.
    pub errors: Vec<String>,
}

fn point(source: &str, epsilon_ms: Option<f64>, p: &Plan, replicas: u32) -> PlanPoint {
    PlanPoint {
        source: source.to_string(),
        epsilon_ms,
        mean_latency_ms: p.totals.units.latency_ms / f64::from(replicas.max(1)),
        carbon_g: p.totals.units.carbon_g,
        energy_wh: p.totals.units.energy_wh,
        nodes_used: p.totals.targets_used,
    }
}

/// The hour of the period with the most requested service CPU.
fn busiest_hour(scenario: &Scenario) -> DateTime<Utc> {
    let s = &scenario.settings;
    let hours = ((s.end() - s.start).num_seconds() / 3600).max(1);
    (0..hours)
        .map(|h| s.start + Duration::hours(h))
        .max_by(|a, b| service_cpu(scenario, *a).total_cmp(&service_cpu(scenario, *b)))
        .unwrap_or(s.start)
}

fn service_cpu(scenario: &Scenario, t: DateTime<Utc>) -> f64 {
    running(scenario, t)
        .map(|(w, r)| w.cpu * f64::from(r))
        .sum()
}

/// Services running at `t` with the replicas they want.
fn running(
    scenario: &Scenario,
    t: DateTime<Utc>,
) -> impl Iterator<Item = (&super::TraceWorkload, u32)> {
    scenario
        .trace
        .iter()
        .filter(move |w| w.kind == Kind::Service && w.arrive <= t && w.depart.is_none_or(|d| t < d))
        .map(move |w| (w, service_replicas(w, t)))
}

/// Sweeps the front and plans each MILP policy at the busiest hour.
pub fn sweep(scenario: &Scenario) -> anyhow::Result<ParetoSummary> {
    let fleet = &scenario.fleet;
    let s = &scenario.settings;
    let at = busiest_hour(scenario);
    let outlooks = carbon_outlooks(fleet, s, at)?;
    let targets: Vec<_> = (0..fleet.nodes.len())
        .map(|n| {
            let carbon = outlooks[fleet.nodes[n].cluster].clone();
            node_target(fleet, n, Default::default(), 0.0, false, carbon)
        })
        .collect();
    let workloads: Vec<Workload> = running(scenario, at)
        .map(|(w, replicas)| Workload {
            replicas,
            ..workload_of(w, s)
        })
        .collect();
    let replicas = workloads.iter().map(|w| w.replicas).sum();
    let power = power_model(fleet);
    let weights = Weights::CARBON;
    let mut errors = Vec::new();
    let front = match pareto_front(
        &workloads,
        &targets,
        &weights,
        at,
        &power,
        &s.milp,
        &ParetoOptions {
            bounded: Objective::Latency,
            points: POINTS,
        },
    ) {
        Ok(f) => f
            .iter()
            .map(|p| point("front", Some(p.epsilon), &p.plan, replicas))
            .collect(),
        Err(e) => {
            errors.push(format!("Pareto front: {e}"));
            Vec::new()
        }
    };
    let mut policies = Vec::new();
    for p in &scenario.policies {
        let (true, Some(w)) = (p.uses_milp(), p.weights()) else {
            continue;
        };
        match plan(&workloads, &targets, &w, at, &power, &s.milp) {
            Ok(pl) => policies.push(point(p.name(), None, &pl, replicas)),
            Err(e) => errors.push(format!("policy `{}`: {e}", p.name())),
        }
    }
    Ok(ParetoSummary {
        at,
        services: workloads.len(),
        replicas,
        horizon_h: s.service_expected_s / 3600.0,
        weights,
        front,
        policies,
        errors,
    })
}

/// Policies whose decisions are per-pod heuristics only, so they have no MILP plan here.
pub fn without_plan(policies: &[Policy]) -> Vec<&'static str> {
    policies
        .iter()
        .filter(|p| !p.uses_milp())
        .map(|p| p.name())
        .collect()
}
