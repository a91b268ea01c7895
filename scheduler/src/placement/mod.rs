//! Batch placement of workloads on managed clusters (OCM): the request format and its
//! validation, the mapping onto the optimizer, the response, and rebalance moves.
//!
//! Used by `POST /v1/placements`, `POST /v1/rebalance`, `ecoplace place` and
//! `ecoplace rebalance`. Time is a parameter: the request's `at`, else the caller's now.
//! It may import `config` and `fleet` (quantities).

pub mod carbon;
pub mod error;
pub mod mapping;
pub mod rebalance;
pub mod request;
pub mod response;
pub mod shift;
pub mod validate;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use optimizer::power::CurvePowerModel;
use optimizer::{Plan, PlanError, PowerModel, SolveOptions, Target, Workload};

use crate::config::PlacementConfig;

pub use error::PlacementError;
pub use rebalance::RebalanceResponse;
pub use request::{Format, PlacementRequest};
pub use response::PlacementResponse;

/// Places workloads on clusters with the configured solver limits and power model.
#[derive(Clone)]
pub struct Placer {
    power: Arc<dyn PowerModel>,
    config: PlacementConfig,
    /// Where clusters given by zone only get their intensity ([`carbon::fill`]).
    carbon: Option<Arc<dyn kepler_client::carbon::CarbonIntensitySource>>,
}

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer")
            .field("power", &self.power.name())
            .field("config", &self.config)
            .field("carbon", &self.carbon.is_some())
            .finish()
    }
}

/// A validated request as optimizer inputs, with its solve settings.
struct Prepared {
    workloads: Vec<Workload>,
    targets: Vec<Target>,
    weights: optimizer::Weights,
    options: SolveOptions,
    at: DateTime<Utc>,
}

impl Placer {
    /// A placer pricing each cluster with the nameplate power curve of its idle and
    /// maximum watts (fitted per-node curves and ONNX models describe nodes, not clusters).
    pub fn new(config: PlacementConfig) -> Self {
        Self {
            power: Arc::new(CurvePowerModel::new()),
            config,
            carbon: None,
        }
    }

    /// The same placer filling in clusters given by carbon zone only from `source`.
    pub fn with_carbon(
        mut self,
        source: Arc<dyn kepler_client::carbon::CarbonIntensitySource>,
    ) -> Self {
        self.carbon = Some(source);
        self
    }

    /// Decodes a request and fills in, from the carbon source if there is one, the
    /// intensity of clusters given by zone only ([`carbon::fill`]).
    pub async fn decode(
        &self,
        body: &[u8],
        format: Format,
        now: DateTime<Utc>,
    ) -> Result<PlacementRequest, PlacementError> {
        let mut req = PlacementRequest::decode(body, format)?;
        if let Some(source) = &self.carbon {
            carbon::fill(&mut req, source.as_ref(), now).await?;
        }
        Ok(req)
    }

    /// The configuration in use.
    pub fn config(&self) -> &PlacementConfig {
        &self.config
    }

    /// Decodes and places a request body; `now` is used when the request has no `at`.
    pub fn place_body(
        &self,
        body: &[u8],
        format: Format,
        now: DateTime<Utc>,
    ) -> Result<PlacementResponse, PlacementError> {
        self.place(&PlacementRequest::decode(body, format)?, now)
    }

    /// Places a decoded request.
    pub fn place(
        &self,
        req: &PlacementRequest,
        now: DateTime<Utc>,
    ) -> Result<PlacementResponse, PlacementError> {
        let p = self.prepare(req, false, now)?;
        let plan = self.solve(&p)?;
        let mut response =
            PlacementResponse::new(&plan, req.workloads.iter().map(|w| w.name.as_str()), p.at);
        shift::start_times(
            req,
            &p.workloads,
            &p.targets,
            p.at,
            &mut response.placements,
        );
        Ok(response)
    }

    /// Re-solves a request whose workloads run somewhere now (`current`), and lists the
    /// moves worth at least `min_gain` (the request's, else `override_min_gain`, else the
    /// configuration's).
    pub fn rebalance(
        &self,
        req: &PlacementRequest,
        override_min_gain: Option<f64>,
        now: DateTime<Utc>,
    ) -> Result<RebalanceResponse, PlacementError> {
        let p = self.prepare(req, true, now)?;
        let plan = self.solve(&p)?;
        let min_gain = override_min_gain
            .or(req.min_gain)
            .unwrap_or(self.config.min_gain);
        rebalance::moves(
            &plan,
            &p.workloads,
            &p.targets,
            self.power.as_ref(),
            min_gain,
            p.at,
        )
        .map_err(|e| PlacementError::Internal(e.to_string()))
    }

    fn prepare(
        &self,
        req: &PlacementRequest,
        rebalance: bool,
        now: DateTime<Utc>,
    ) -> Result<Prepared, PlacementError> {
        let errors = validate::check(req, rebalance);
        if !errors.is_empty() {
            return Err(PlacementError::Invalid(errors));
        }
        let weights =
            validate::weights(&req.weights).map_err(|e| PlacementError::Invalid(vec![e]))?;
        let (workloads, targets) = mapping::inputs(req);
        let unplaceable = mapping::unplaceable(&workloads, &targets);
        if !unplaceable.is_empty() {
            return Err(PlacementError::Infeasible(unplaceable));
        }
        let options = SolveOptions {
            time_limit_s: req
                .solver
                .time_limit_seconds
                .map_or(self.config.time_limit_seconds, |t| {
                    t.min(self.config.time_limit_seconds)
                }),
            mip_gap: req.solver.mip_gap.unwrap_or(self.config.mip_gap),
            convex_power: req
                .solver
                .convex_power
                .unwrap_or(SolveOptions::default().convex_power),
            ..SolveOptions::default()
        };
        Ok(Prepared {
            workloads,
            targets,
            weights,
            options,
            at: req.at.unwrap_or(now),
        })
    }

    fn solve(&self, p: &Prepared) -> Result<Plan, PlacementError> {
        optimizer::plan(
            &p.workloads,
            &p.targets,
            &p.weights,
            p.at,
            self.power.as_ref(),
            &p.options,
        )
        .map_err(|e| match e {
            PlanError::Infeasible(report) => {
                PlacementError::Infeasible(mapping::from_report(report))
            }
            PlanError::Invalid(reason) => PlacementError::Invalid(vec![error::FieldError {
                field: String::new(),
                message: reason,
            }]),
            other => PlacementError::Internal(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests;
