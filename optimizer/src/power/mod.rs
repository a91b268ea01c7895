//! Power prediction: how many extra watts a workload adds to a target.
//!
//! Every model answers the same question, batched: for each (target, added CPU) pair, the
//! predicted *incremental* power `P(u + Δu) − P(u)` of the target, where `u` is its CPU
//! utilisation now and `Δu = added_cpu_cores / cpu_cores`.

use serde::{Deserialize, Serialize};

pub mod curve;
pub mod fallback;
pub mod onnx;

pub use curve::{CurvePowerModel, DEFAULT_NAMEPLATE_K2};
pub use fallback::FallbackPowerModel;
pub use onnx::OnnxPowerModel;

/// One prediction request: a target's power profile and the CPU a workload adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerQuery<'a> {
    /// Hardware type of the target (the key of a fitted curve), e.g. `std-x86`.
    pub node_type: &'a str,
    /// Idle power of the target, watts.
    pub idle_watts: f64,
    /// Power at full load, watts.
    pub max_watts: f64,
    /// CPU capacity of the target, cores.
    pub cpu_cores: f64,
    /// CPU utilisation now, 0..=1.
    pub utilisation: f64,
    /// CPU cores the workload adds (its request).
    pub added_cpu_cores: f64,
}

impl<'a> PowerQuery<'a> {
    /// The query for placing `added_cpu_cores` more on `target`, from its power profile.
    pub fn placing(target: &'a crate::model::Target, added_cpu_cores: f64) -> Self {
        Self {
            node_type: &target.node_type,
            idle_watts: target.idle_watts,
            max_watts: target.max_watts,
            cpu_cores: target.capacity.cpu,
            utilisation: target.utilisation,
            added_cpu_cores,
        }
    }

    /// Utilisation added by the workload, `added_cpu_cores / cpu_cores` (0 without cores).
    pub fn added_utilisation(&self) -> f64 {
        if self.cpu_cores > 0.0 {
            self.added_cpu_cores / self.cpu_cores
        } else {
            0.0
        }
    }
}

/// Why a model could not predict.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The model file could not be read or is not a usable ONNX graph.
    #[error("power model {path}: {reason}")]
    Load {
        /// The model file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Inference failed.
    #[error("power model inference failed: {0}")]
    Inference(String),
    /// Samples given to a curve fit cannot determine a curve.
    #[error("cannot fit power curve for `{node_type}`: {reason}")]
    Fit {
        /// The node type being fitted.
        node_type: String,
        /// What is wrong with the samples.
        reason: String,
    },
}

/// Predicts incremental watts, batched.
pub trait PowerModel: Send + Sync {
    /// Short name for explanations and logs (e.g. `onnx:models/power-mlp.onnx`, `curve`).
    fn name(&self) -> &str;

    /// Writes the predicted incremental watts of each query into `out` (same length and
    /// order as `queries`); values are ≥ 0.
    fn incremental_watts(
        &self,
        queries: &[PowerQuery<'_>],
        out: &mut [f64],
    ) -> Result<(), PowerError>;
}

/// Runs `model` on `queries` and checks its answers: a non-finite prediction is an error
/// naming the model and the query, a negative one (a model's noise) is clamped to 0 W.
pub fn predict(
    model: &dyn PowerModel,
    queries: &[PowerQuery<'_>],
    out: &mut [f64],
) -> Result<(), PowerError> {
    model.incremental_watts(queries, out)?;
    for (i, (w, q)) in out.iter_mut().zip(queries).enumerate() {
        if !w.is_finite() {
            return Err(PowerError::Inference(format!(
                "{}: query {i} (node type `{}`) predicted {w} W",
                model.name(),
                q.node_type
            )));
        }
        *w = w.max(0.0);
    }
    Ok(())
}

/// Parameters of one PEAKS-form curve `P(u) = k0 + k1·e^(k2·u)`, watts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerCurve {
    /// Constant term, watts.
    pub k0: f64,
    /// Exponential scale, watts.
    pub k1: f64,
    /// Exponential rate (dimensionless).
    pub k2: f64,
}

impl PowerCurve {
    /// Total power at utilisation `u` (clamped to 0..=1), watts.
    pub fn watts(&self, u: f64) -> f64 {
        self.k0 + self.k1 * (self.k2 * u.clamp(0.0, 1.0)).exp()
    }
}
