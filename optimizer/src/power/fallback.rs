//! The production power model: ONNX when one is configured and answering, the analytic
//! curve model otherwise; it counts how often it had to fall back and remembers why.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::curve::CurvePowerModel;
use super::onnx::OnnxPowerModel;
use super::{PowerError, PowerModel, PowerQuery};

/// Uses an [`OnnxPowerModel`] when configured and falls back to a [`CurvePowerModel`] when none
/// is configured, it failed to load, or an inference fails.
#[derive(Debug)]
pub struct FallbackPowerModel {
    onnx: Option<OnnxPowerModel>,
    curve: CurvePowerModel,
    name: String,
    fallbacks: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl FallbackPowerModel {
    /// Curve model only: every call is answered by `curve` (and counted as a fallback).
    pub fn curve_only(curve: CurvePowerModel) -> Self {
        Self::build(
            None,
            curve,
            "curve (no onnx model configured)".to_string(),
            None,
        )
    }

    /// ONNX first, `curve` when an inference fails.
    pub fn new(onnx: OnnxPowerModel, curve: CurvePowerModel) -> Self {
        let name = format!("{} (fallback: curve)", onnx.name());
        Self::build(Some(onnx), curve, name, None)
    }

    /// Loads the ONNX model at `path` if one is given; a load failure is recorded (see
    /// [`Self::last_error`]) and the curve model is used instead.
    pub fn from_path(path: Option<&Path>, curve: CurvePowerModel) -> Self {
        match path.map(OnnxPowerModel::load) {
            None => Self::curve_only(curve),
            Some(Ok(onnx)) => Self::new(onnx, curve),
            Some(Err(e)) => {
                let name = "curve (onnx model failed to load)".to_string();
                Self::build(None, curve, name, Some(e.to_string()))
            }
        }
    }

    fn build(
        onnx: Option<OnnxPowerModel>,
        curve: CurvePowerModel,
        name: String,
        error: Option<String>,
    ) -> Self {
        Self {
            onnx,
            curve,
            name,
            fallbacks: AtomicU64::new(0),
            last_error: Mutex::new(error),
        }
    }

    /// Whether an ONNX model is loaded (inference may still fall back per call).
    pub fn has_onnx(&self) -> bool {
        self.onnx.is_some()
    }

    /// How many calls the curve model answered instead of the ONNX model.
    pub fn fallback_count(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The most recent ONNX load or inference error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// The curve model used as the fallback.
    pub fn curve_model(&self) -> &CurvePowerModel {
        &self.curve
    }

    fn record(&self, error: &PowerError) {
        let text = error.to_string();
        match self.last_error.lock() {
            Ok(mut g) => *g = Some(text),
            Err(poisoned) => *poisoned.into_inner() = Some(text),
        }
    }
}

impl PowerModel for FallbackPowerModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn incremental_watts(
        &self,
        queries: &[PowerQuery<'_>],
        out: &mut [f64],
    ) -> Result<(), PowerError> {
        if let Some(onnx) = &self.onnx {
            match onnx.incremental_watts(queries, out) {
                Ok(()) => return Ok(()),
                Err(e) => self.record(&e),
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.curve.incremental_watts(queries, out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn without_onnx_every_call_is_a_counted_fallback() {
        let model = FallbackPowerModel::curve_only(CurvePowerModel::new());
        assert!(!model.has_onnx());
        assert!(model.name().starts_with("curve"));
        let q = PowerQuery {
            node_type: "n",
            idle_watts: 100.0,
            max_watts: 300.0,
            cpu_cores: 8.0,
            utilisation: 0.25,
            added_cpu_cores: 2.0,
        };
        let mut out = [0.0];
        model.incremental_watts(&[q], &mut out).unwrap();
        model.incremental_watts(&[q], &mut out).unwrap();
        assert!(out[0] > 0.0);
        assert_eq!(model.fallback_count(), 2);
        assert_eq!(model.last_error(), None);
    }
}
