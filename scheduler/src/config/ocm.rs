//! `ocm`: the Open Cluster Management `AddOnPlacementScore` publisher and its Lease.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::check_preset;
use super::{Checked, field, positive};

/// The OCM score publisher (`ocm` in ecoplace.yaml).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OcmConfig {
    /// Publish `AddOnPlacementScore`s on the hub (`ecoplace serve` runs the publisher too).
    pub enabled: bool,
    /// Name of the `AddOnPlacementScore` in each cluster namespace (a Placement's
    /// `scoreCoordinate.addOn.resourceName`).
    pub score_resource_name: String,
    /// Seconds between two publications; scores are valid for two periods.
    pub period_seconds: u64,
    /// ManagedCluster label whose value keys `topology.carbonZones` and `topology.latencyMs`.
    pub region_label: String,
    /// User regions with a `latency-<region>` score each (keys of `topology.latencyMs` rows).
    pub user_regions: Vec<String>,
    /// Weights preset of the combined `ecoplace` score; `policy.objective` when absent.
    pub objective: Option<String>,
    /// CPU cores of the reference replica the scores price (energy and carbon per replica).
    pub reference_cpu_cores: f64,
    /// Leader election: the `coordination.k8s.io/v1` Lease several replicas share.
    pub lease: LeaseConfig,
}

impl Default for OcmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            score_resource_name: "ecoplace".into(),
            period_seconds: 60,
            region_label: "region".into(),
            user_regions: Vec::new(),
            objective: None,
            reference_cpu_cores: 1.0,
            lease: LeaseConfig::default(),
        }
    }
}

/// The Lease that elects the publishing replica.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace; the `POD_NAMESPACE` environment variable when absent.
    pub namespace: Option<String>,
    /// Seconds a holder keeps the Lease without renewing it.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub renew_before_seconds: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            name: "ecoplace-ocm-scores".into(),
            namespace: None,
            duration_seconds: 15,
            renew_before_seconds: 5,
        }
    }
}

impl LeaseConfig {
    /// Semantic checks; the field path below the section (`lease`).
    pub fn check(&self) -> Checked {
        if self.duration_seconds == 0 || self.renew_before_seconds >= self.duration_seconds {
            return field(
                "lease",
                format!(
                    "need 0 ≤ renewBeforeSeconds < durationSeconds, got {} and {}",
                    self.renew_before_seconds, self.duration_seconds
                ),
            );
        }
        Ok(())
    }
}

impl OcmConfig {
    /// Semantic checks; the field path below `ocm`.
    pub fn check(&self) -> Checked {
        if !is_dns_subdomain(&self.score_resource_name) {
            return field(
                "scoreResourceName",
                format!("`{}` is not a DNS subdomain name", self.score_resource_name),
            );
        }
        if self.period_seconds == 0 {
            return field("periodSeconds", "must be positive".into());
        }
        if !positive(self.reference_cpu_cores) {
            return field(
                "referenceCpuCores",
                "must be a positive number of cores".into(),
            );
        }
        if let Some(o) = &self.objective {
            check_preset("objective", o)?;
        }
        self.lease.check()?;
        for r in &self.user_regions {
            if !is_score_name_part(r) {
                return field(
                    "userRegions",
                    format!("`{r}` must be letters, digits, `-`, `_` or `.`"),
                );
            }
        }
        Ok(())
    }
}

/// Whether `s` is a lowercase RFC 1123 subdomain (an object name).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Whether `s` may follow `latency-` in a score name: letters, digits, `-`, `_`, `.`.
pub fn is_score_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::config::Config;

    fn err(yaml: &str) -> String {
        Config::parse(yaml, "t.yaml").unwrap_err().to_string()
    }

    #[test]
    fn ocm_section_is_checked_with_field_paths() {
        let ok = Config::parse("ocm: {enabled: true, userRegions: [eu-west]}", "t.yaml").unwrap();
        assert!(ok.ocm.enabled);
        assert!(err("ocm: {scoreResourceName: Eco_Place}").contains("ocm.scoreResourceName"));
        assert!(err("ocm: {periodSeconds: 0}").contains("ocm.periodSeconds"));
        assert!(err("ocm: {objective: greenest}").contains("ocm.objective"));
        assert!(
            err("ocm: {lease: {durationSeconds: 5, renewBeforeSeconds: 5}}").contains("ocm.lease")
        );
        assert!(err("ocm: {userRegions: [\"a b\"]}").contains("ocm.userRegions"));
        assert!(err("ocm: {enable: true}").contains("enable"));
    }
}
