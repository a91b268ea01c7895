//! `carbonWindow`: the scheduling-gate controller that holds deferrable pods (gate
//! `ecoplace.io/carbon-window`) until the cleanest forecast window before their deadline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ocm::LeaseConfig;
use super::{Checked, MAX_PERIOD_S, field, positive};

/// The carbon-window controller (`carbonWindow` in ecoplace.yaml).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CarbonWindowConfig {
    /// Run the controller in `ecoplace serve` too (`ecoplace carbon-window` runs it alone).
    pub enabled: bool,
    /// Carbon zones the held pods may run in; empty: every zone of `topology.carbonZones`
    /// and `topology.defaultCarbonZone`.
    pub zones: Vec<String>,
    /// Start slots, minutes: a hold ends on a slot boundary (or at the pod's latest start).
    pub slot_minutes: u32,
    /// CPU cores (requests) of released pods that may run at once per zone and slot: the
    /// cleanest hour does not become a thundering herd. A quarter of a zone's allocatable
    /// cores is a good start.
    pub cores_per_slot: f64,
    /// Hold a pod only when its window saves at least this share of the carbon of starting
    /// now, percent.
    pub min_saving_percent: f64,
    /// Run time of pods without `ecoplace.io/expected-duration`, seconds;
    /// `policy.expectedDurationSeconds` when absent.
    pub default_duration_seconds: Option<f64>,
    /// Power one requested CPU core draws while the pod runs, watts: the grams in events and
    /// metrics (the choice of window does not depend on it).
    pub watts_per_core: f64,
    /// Seconds between two looks for pods that are due.
    pub check_seconds: f64,
    /// A pod still gated this many seconds after its latest start counts as overdue
    /// (`ecoplace_carbon_window_pods_overdue`, alert `EcoplaceCarbonWindowOverdue`).
    pub overdue_after_seconds: f64,
    /// Leader election: the `coordination.k8s.io/v1` Lease the controller's replicas share
    /// (its own, not the OCM publisher's).
    pub lease: WindowLease,
}

/// The controller's Lease: the fields of `ocm.lease`, with this controller's own default
/// name (a partial `lease:` keeps it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowLease {
    /// Lease name.
    pub name: String,
    /// Lease namespace; the `POD_NAMESPACE` environment variable when absent.
    pub namespace: Option<String>,
    /// Seconds a holder keeps the Lease without renewing it.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub renew_before_seconds: u64,
}

impl Default for WindowLease {
    fn default() -> Self {
        let LeaseConfig {
            namespace,
            duration_seconds,
            renew_before_seconds,
            ..
        } = LeaseConfig::default();
        Self {
            name: DEFAULT_LEASE.into(),
            namespace,
            duration_seconds,
            renew_before_seconds,
        }
    }
}

impl From<&WindowLease> for LeaseConfig {
    fn from(w: &WindowLease) -> Self {
        Self {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            duration_seconds: w.duration_seconds,
            renew_before_seconds: w.renew_before_seconds,
        }
    }
}

/// The controller's Lease name when none is configured.
pub const DEFAULT_LEASE: &str = "ecoplace-carbon-window";

impl Default for CarbonWindowConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            zones: Vec::new(),
            slot_minutes: 15,
            cores_per_slot: 64.0,
            min_saving_percent: 5.0,
            default_duration_seconds: None,
            watts_per_core: 8.0,
            check_seconds: 5.0,
            overdue_after_seconds: 120.0,
            lease: WindowLease::default(),
        }
    }
}

impl CarbonWindowConfig {
    /// Semantic checks; the field path below `carbonWindow`. `ocm_lease` is the OCM
    /// publisher's Lease name, which this controller must not share.
    pub fn check(&self, ocm_lease: &str) -> Checked {
        if self.slot_minutes == 0 || self.slot_minutes > 24 * 60 {
            return field(
                "slotMinutes",
                format!("must be 1 … 1440 minutes, got {}", self.slot_minutes),
            );
        }
        if !positive(self.cores_per_slot) {
            return field("coresPerSlot", "must be a positive number of cores".into());
        }
        if !(0.0..100.0).contains(&self.min_saving_percent) {
            return field(
                "minSavingPercent",
                format!("must be 0 ≤ p < 100, got {}", self.min_saving_percent),
            );
        }
        if let Some(d) = self.default_duration_seconds
            && !positive(d)
        {
            return field("defaultDurationSeconds", "must be positive".into());
        }
        if !positive(self.watts_per_core) {
            return field("wattsPerCore", "must be positive".into());
        }
        for (name, v) in [
            ("checkSeconds", self.check_seconds),
            ("overdueAfterSeconds", self.overdue_after_seconds),
        ] {
            if !positive(v) || v > MAX_PERIOD_S {
                return field(name, format!("must be 0 < s ≤ {MAX_PERIOD_S}, got {v}"));
            }
        }
        if self.zones.iter().any(|z| z.trim().is_empty()) {
            return field("zones", "a zone is empty".into());
        }
        if self.lease.name == ocm_lease {
            return field(
                "lease.name",
                format!(
                    "`{ocm_lease}` is the OCM publisher's Lease (ocm.lease.name); the controller needs its own (default {DEFAULT_LEASE})"
                ),
            );
        }
        LeaseConfig::from(&self.lease).check()
    }
}
