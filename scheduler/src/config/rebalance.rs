//! `rebalance`: node-level rebalance (which pods may be evicted, how fast).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, MAX_PERIOD_S, field};

/// Node-level rebalance: evictions through the Eviction API, capped and paced.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeRebalanceConfig {
    /// Most pods one `--execute` run evicts.
    pub max_evictions: u32,
    /// Time between two evictions, seconds.
    pub eviction_interval_seconds: f64,
    /// Namespaces whose pods are never moved.
    pub excluded_namespaces: Vec<String>,
    /// Also move pods with `emptyDir` or `hostPath` volumes (their local data is lost).
    pub evict_local_storage_pods: bool,
}

impl Default for NodeRebalanceConfig {
    fn default() -> Self {
        Self {
            max_evictions: 5,
            eviction_interval_seconds: 30.0,
            excluded_namespaces: vec!["kube-system".into()],
            evict_local_storage_pods: false,
        }
    }
}

impl NodeRebalanceConfig {
    /// Semantic checks; the field path below `rebalance`.
    pub fn check(&self) -> Checked {
        if !(0.0..=MAX_PERIOD_S).contains(&self.eviction_interval_seconds) {
            return field(
                "evictionIntervalSeconds",
                format!("must be in 0..={MAX_PERIOD_S} (a day)"),
            );
        }
        Ok(())
    }
}
