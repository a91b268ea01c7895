//! Network latency from user regions to clusters, a static matrix from configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;

/// Round-trip latency in milliseconds, by user region, then by cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LatencyMatrix(BTreeMap<String, BTreeMap<String, f64>>);

impl LatencyMatrix {
    /// Builds and validates a matrix (every value finite and ≥ 0); errors name the field
    /// path `latency.<region>.<cluster>`.
    pub fn new(rows: BTreeMap<String, BTreeMap<String, f64>>) -> Result<Self, TelemetryError> {
        let m = Self(rows);
        m.validate()?;
        Ok(m)
    }

    /// Checks every value is a finite, non-negative number of milliseconds.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        for (region, row) in &self.0 {
            for (cluster, ms) in row {
                if !(ms.is_finite() && *ms >= 0.0) {
                    return Err(TelemetryError::Config {
                        field: format!("latency.{region}.{cluster}"),
                        message: format!("{ms} is not a latency in milliseconds (finite, ≥ 0)"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The embedded fleet's matrix: users in DE, FR and GB to clusters `de`, `fr`, `gb`
    /// (typical intra-European round trips).
    pub fn embedded() -> Self {
        let row = |de: f64, fr: f64, gb: f64| {
            BTreeMap::from([
                ("de".to_string(), de),
                ("fr".to_string(), fr),
                ("gb".to_string(), gb),
            ])
        };
        Self(BTreeMap::from([
            ("DE".to_string(), row(6.0, 18.0, 22.0)),
            ("FR".to_string(), row(17.0, 5.0, 14.0)),
            ("GB".to_string(), row(21.0, 13.0, 5.0)),
        ]))
    }

    /// Latency from users in `region` to `cluster`, when known.
    pub fn latency_ms(&self, region: &str, cluster: &str) -> Option<f64> {
        self.0.get(region)?.get(cluster).copied()
    }

    /// The user regions the matrix knows.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_name_the_field() {
        let bad = BTreeMap::from([("DE".to_string(), BTreeMap::from([("fr".to_string(), -1.0)]))]);
        let e = LatencyMatrix::new(bad).unwrap_err().to_string();
        assert!(e.contains("latency.DE.fr"), "{e}");
    }

    #[test]
    fn lookups_and_yaml_shape() {
        let m: LatencyMatrix = serde_json::from_str(r#"{"DE":{"de":5,"fr":18}}"#).unwrap();
        assert_eq!(m.latency_ms("DE", "fr"), Some(18.0));
        assert_eq!(m.latency_ms("DE", "gb"), None);
        assert_eq!(LatencyMatrix::embedded().latency_ms("GB", "gb"), Some(5.0));
    }
}
