//! `power`: node power profiles by instance type, and the ONNX power model.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field};

/// Node power profiles.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PowerConfig {
    /// Label naming a node's type.
    pub node_type_label: String,
    /// Profile per node type.
    pub node_types: BTreeMap<String, NodeProfile>,
    /// Profile for node types not listed in `nodeTypes`.
    pub default_profile: NodeProfile,
    /// ONNX power model; the fitted-curve model is used when absent or failing.
    pub onnx_model: Option<PathBuf>,
}

impl Default for PowerConfig {
    fn default() -> Self {
        Self {
            node_type_label: "node.kubernetes.io/instance-type".into(),
            node_types: BTreeMap::new(),
            default_profile: NodeProfile::default(),
            onnx_model: None,
        }
    }
}

/// A node type's power.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeProfile {
    /// Power at 0 % CPU, watts.
    pub idle_watts: f64,
    /// Power at 100 % CPU, watts.
    pub max_watts: f64,
    /// Hard power cap, watts: nodes whose predicted power would exceed it fail filter.
    pub power_cap_watts: Option<f64>,
}

impl Default for NodeProfile {
    fn default() -> Self {
        Self {
            idle_watts: 100.0,
            max_watts: 300.0,
            power_cap_watts: None,
        }
    }
}

impl PowerConfig {
    /// Semantic checks; the field path below `power`.
    pub fn check(&self) -> Checked {
        let profiles = std::iter::once(("defaultProfile".to_string(), &self.default_profile))
            .chain(
                self.node_types
                    .iter()
                    .map(|(t, p)| (format!("nodeTypes.{t}"), p)),
            );
        for (path, p) in profiles {
            if !(p.idle_watts.is_finite() && p.idle_watts >= 0.0 && p.max_watts > p.idle_watts) {
                return field(
                    &path,
                    format!(
                        "need 0 ≤ idleWatts < maxWatts, got {} and {}",
                        p.idle_watts, p.max_watts
                    ),
                );
            }
        }
        Ok(())
    }
}
