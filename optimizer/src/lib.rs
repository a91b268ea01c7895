//! Pure placement decisions: no network, no clock, no Kubernetes types.
//!
//! Inputs are [`Target`]s (nodes or clusters) and [`Workload`]s; [`Weights`] say how much
//! carbon, energy, latency and migration count. Power models predict the extra watts of a
//! workload on a target; [`cost`] prices a replica with the objective terms that per-pod
//! scoring and the placement MILP share.

pub mod cost;
pub mod headroom;
pub mod model;
pub mod plan;
pub mod power;
pub mod score;
pub mod shift;
pub mod validate;
pub mod weights;

pub use cost::{Contributions, Infeasibility, Normalisers, Objectives};
pub use model::{CarbonOutlook, NO_SLO_MS, Resource, Resources, Target, TargetKind, Workload};
pub use plan::{
    Backend, InfeasibleReport, ModelStats, Objective, ParetoOptions, ParetoPoint, Plan, PlanError,
    PlanStatus, Savings, SolveOptions, TargetReasons, Totals, pareto_front, plan,
};
pub use power::{PowerCurve, PowerError, PowerModel, PowerQuery};
pub use score::{TargetScore, best_target, score_targets, score_targets_normalised};
pub use shift::{
    DeferrableJob, ShiftCandidate, ShiftDecision, ShiftReason, SlotBudget, choose_start,
};
pub use validate::{Violation, validate, validate_assignments};
pub use weights::{Weights, WeightsError};
