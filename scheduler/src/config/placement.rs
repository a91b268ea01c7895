//! `placement`: batch placement and rebalance on managed clusters (solver limits, the move
//! threshold).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field, positive};

/// Batch placement and rebalance on managed clusters: solver limits and the move threshold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementConfig {
    /// Solver wall-time limit per request, seconds (a request may ask for less, not more).
    pub time_limit_seconds: f64,
    /// Relative MIP gap at which the solver stops, (plan − bound) / plan as in HiGHS (0.01 = 1 %).
    pub mip_gap: f64,
    /// Rebalance: smallest weighted normalised objective gain a move must bring.
    pub min_gain: f64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            time_limit_seconds: 5.0,
            mip_gap: 0.01,
            min_gain: 0.05,
        }
    }
}

impl PlacementConfig {
    /// Semantic checks; the field path below `placement`.
    pub fn check(&self) -> Checked {
        if !positive(self.time_limit_seconds) {
            return field("timeLimitSeconds", "must be positive".into());
        }
        if !(self.mip_gap.is_finite() && (0.0..1.0).contains(&self.mip_gap)) {
            return field("mipGap", "must be in 0..1".into());
        }
        if !(self.min_gain.is_finite() && self.min_gain >= 0.0) {
            return field("minGain", "must be a finite number ≥ 0".into());
        }
        Ok(())
    }
}
