//! `policy`: pod policy defaults and per-namespace overrides (presets, user region, SLO,
//! hard rules).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, field, positive};

/// Pod policy defaults.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// Default weights preset.
    pub objective: String,
    /// Default user region for latency SLOs.
    pub user_region: Option<String>,
    /// Default latency SLO, ms.
    pub max_latency_ms: Option<f64>,
    /// Expected pod lifetime used for energy and wake cost, seconds.
    pub expected_duration_seconds: f64,
    /// Hard: nodes with less allocatable memory fail, bytes.
    pub min_memory_bytes: Option<f64>,
    /// Hard: labels nodes must carry.
    pub required_labels: BTreeMap<String, String>,
    /// Overrides per namespace.
    pub namespaces: BTreeMap<String, NamespacePolicy>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            objective: "balanced".into(),
            user_region: None,
            max_latency_ms: None,
            expected_duration_seconds: 3600.0,
            min_memory_bytes: None,
            required_labels: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

/// A namespace's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// Weights preset.
    pub objective: Option<String>,
    /// User region.
    pub user_region: Option<String>,
    /// Latency SLO, ms.
    pub max_latency_ms: Option<f64>,
    /// Leave this namespace's pods alone.
    pub skip: Option<bool>,
    /// Minimum allocatable memory, bytes.
    pub min_memory_bytes: Option<f64>,
    /// Extra required node labels.
    pub required_labels: BTreeMap<String, String>,
}

impl PolicyConfig {
    /// Semantic checks; the field path below `policy`.
    pub fn check(&self) -> Checked {
        if !positive(self.expected_duration_seconds) {
            return field("expectedDurationSeconds", "must be positive".into());
        }
        check_preset("objective", &self.objective)?;
        for (ns, p) in &self.namespaces {
            if let Some(o) = &p.objective {
                check_preset(&format!("namespaces.{ns}.objective"), o)?;
            }
        }
        Ok(())
    }
}

/// A weights preset name (`balanced`, `carbon`, `energy`, `latency`).
pub(super) fn check_preset(path: &str, name: &str) -> Checked {
    optimizer::Weights::preset(name)
        .map(|_| ())
        .map_err(|e| (path.to_string(), e.to_string()))
}
