//! `kubernetes`: the Node and Pod watches behind the extender's node facts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field, positive};

/// The Node and Pod watches that feed the extender's node facts (names mode).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesConfig {
    /// A watch failing (errors, no recovery) for longer than this makes names-mode calls
    /// fail open (`nodes_stale`) until it recovers, seconds; watches that merely end and
    /// are re-established never count.
    pub watch_stale_after_seconds: f64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            watch_stale_after_seconds: 30.0,
        }
    }
}

impl KubernetesConfig {
    /// Semantic checks; the field path below `kubernetes`.
    pub fn check(&self) -> Checked {
        if !positive(self.watch_stale_after_seconds) {
            return field("watchStaleAfterSeconds", "must be positive".into());
        }
        Ok(())
    }
}
