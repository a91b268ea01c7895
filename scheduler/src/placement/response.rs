//! The placement answer: per workload the chosen clusters with replica counts, totals per
//! objective against the carbon-blind reference, and how the solver did.

use chrono::{DateTime, Utc};
use serde::Serialize;

use optimizer::{ModelStats, Plan, PlanStatus, Savings, Totals, Weights};

/// The answer to `POST /v1/placements`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementResponse {
    /// The time the placement was priced at.
    pub at: DateTime<Utc>,
    /// The weights used.
    pub weights: Weights,
    /// How the solver did.
    pub solver: SolverReport,
    /// Per workload, in request order: the clusters chosen and their replicas.
    pub placements: Vec<WorkloadPlacement>,
    /// Totals of this placement.
    pub totals: ObjectiveTotals,
    /// Totals of the carbon-blind reference (least-allocated spreading), if it exists.
    pub reference: Option<ObjectiveTotals>,
    /// Why there is no reference, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_error: Option<String>,
    /// Reference minus this placement (positive = saved).
    pub savings: Option<SavingsReport>,
    /// The same in sentences.
    pub explanation: Vec<String>,
}

/// Solver outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SolverReport {
    /// `optimal`, `gap_reached`, `time_limit` or `fallback` (the feasible greedy plan).
    pub status: &'static str,
    /// Why the greedy fallback was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Relative MIP gap reported by the solver.
    pub gap: Option<f64>,
    /// Solver wall time, seconds.
    pub solve_seconds: f64,
    /// Planning horizon, seconds (the longest expected duration).
    pub horizon_seconds: f64,
    /// Model size.
    pub model: ModelReport,
}

/// Size of the solved model.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    /// Workloads given.
    pub workloads: usize,
    /// Classes after merging workloads of the same shape.
    pub classes: usize,
    /// Clusters given.
    pub clusters: usize,
    /// Feasible (class, cluster) pairs.
    pub pairs: usize,
    /// MILP columns.
    pub variables: usize,
    /// Integer columns.
    pub integer_variables: usize,
    /// MILP rows.
    pub constraints: usize,
}

impl From<ModelStats> for ModelReport {
    fn from(s: ModelStats) -> Self {
        Self {
            workloads: s.workloads,
            classes: s.classes,
            clusters: s.targets,
            pairs: s.pairs,
            variables: s.variables,
            integer_variables: s.integer_variables,
            constraints: s.constraints,
        }
    }
}

/// One workload's placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPlacement {
    /// Workload name.
    pub workload: String,
    /// Replicas placed.
    pub replicas: u32,
    /// Clusters with at least one replica, by name.
    pub clusters: Vec<ClusterReplicas>,
    /// With a `deadline`: when to start (the cleanest forecast window that still ends by
    /// it), else absent (start now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// With a `deadline`: why it starts then, and the carbon it saves against now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftReport>,
}

/// A deferrable workload's start decision (`optimizer::shift::choose_start`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftReport {
    /// `cleanest`, `now_is_cleanest`, `deadline_near` or `budget_full`.
    pub reason: &'static str,
    /// Mean forecast intensity of a run started now, gCO2e/kWh (replica-weighted over its
    /// clusters).
    pub now_g_per_kwh: f64,
    /// Mean forecast intensity of the chosen run, gCO2e/kWh.
    pub window_g_per_kwh: f64,
    /// Forecast carbon saved against starting now, grams.
    pub saved_g: f64,
    /// The decision in one sentence.
    pub explanation: String,
}

/// Replicas on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReplicas {
    /// Cluster name.
    pub cluster: String,
    /// Replicas there.
    pub replicas: u32,
}

/// Per-objective totals of a placement, over each workload's expected duration.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveTotals {
    /// Incremental energy, Wh.
    pub energy_wh: f64,
    /// Emissions, gCO2e.
    pub carbon_g: f64,
    /// Mean user latency, ms, summed over replicas.
    pub latency_ms: f64,
    /// Replicas moved away from their current clusters.
    pub migration: f64,
    /// Weighted normalised objective (lower is better).
    pub objective: f64,
    /// Clusters used.
    pub clusters_used: usize,
}

impl From<&Totals> for ObjectiveTotals {
    fn from(t: &Totals) -> Self {
        Self {
            energy_wh: t.units.energy_wh,
            carbon_g: t.units.carbon_g,
            latency_ms: t.units.latency_ms,
            migration: t.units.migration,
            objective: t.objective,
            clusters_used: t.targets_used,
        }
    }
}

/// What this placement saves against the reference (positive = better), and in percent.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsReport {
    /// Energy saved, Wh.
    pub energy_wh: f64,
    /// Emissions avoided, gCO2e.
    pub carbon_g: f64,
    /// Latency saved, ms summed over replicas.
    pub latency_ms: f64,
    /// Fewer replicas moved.
    pub migration: f64,
    /// Objective reduction.
    pub objective: f64,
    /// Energy saved, % of the reference.
    pub energy_percent: f64,
    /// Emissions avoided, % of the reference.
    pub carbon_percent: f64,
    /// Latency saved, % of the reference.
    pub latency_percent: f64,
}

impl From<&Savings> for SavingsReport {
    fn from(s: &Savings) -> Self {
        Self {
            energy_wh: s.units.energy_wh,
            carbon_g: s.units.carbon_g,
            latency_ms: s.units.latency_ms,
            migration: s.units.migration,
            objective: s.objective,
            energy_percent: s.percent.energy_wh,
            carbon_percent: s.percent.carbon_g,
            latency_percent: s.percent.latency_ms,
        }
    }
}

impl SolverReport {
    /// The solver outcome of `plan`.
    pub fn of(plan: &Plan) -> Self {
        let (status, fallback_reason) = match &plan.status {
            PlanStatus::Optimal => ("optimal", None),
            PlanStatus::GapReached => ("gap_reached", None),
            PlanStatus::TimeLimit => ("time_limit", None),
            PlanStatus::Fallback { reason } => ("fallback", Some(reason.clone())),
        };
        Self {
            status,
            fallback_reason,
            gap: plan.gap,
            solve_seconds: plan.solve_seconds,
            horizon_seconds: plan.horizon_s,
            model: plan.stats.into(),
        }
    }
}

/// `workloads`' placements from `plan`'s assignments, in the given order.
pub fn placements<'a>(
    names: impl Iterator<Item = &'a str>,
    plan: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>,
) -> Vec<WorkloadPlacement> {
    names
        .map(|name| {
            let clusters: Vec<ClusterReplicas> = plan
                .get(name)
                .into_iter()
                .flatten()
                .filter(|(_, k)| **k > 0)
                .map(|(c, &k)| ClusterReplicas {
                    cluster: c.clone(),
                    replicas: k,
                })
                .collect();
            WorkloadPlacement {
                workload: name.to_string(),
                replicas: clusters.iter().map(|c| c.replicas).sum(),
                clusters,
                start_at: None,
                shift: None,
            }
        })
        .collect()
}

impl PlacementResponse {
    /// The response for `plan`, workloads in request order.
    pub fn new<'a>(plan: &Plan, names: impl Iterator<Item = &'a str>, at: DateTime<Utc>) -> Self {
        Self {
            at,
            weights: plan.weights,
            solver: SolverReport::of(plan),
            placements: placements(names, &plan.assignments),
            totals: (&plan.totals).into(),
            reference: plan.reference.as_ref().map(Into::into),
            reference_error: plan.reference_error.clone(),
            savings: plan.savings.as_ref().map(Into::into),
            explanation: plan.explain(),
        }
    }
}
