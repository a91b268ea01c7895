//! How much each objective counts: carbon, energy, latency and migration.

use serde::{Deserialize, Serialize};

/// Relative importance of each (normalised, dimensionless) objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Weight of emissions (energy × grid intensity).
    pub carbon: f64,
    /// Weight of energy (idle power of woken targets + incremental power).
    pub energy: f64,
    /// Weight of latency to the workload's users.
    pub latency: f64,
    /// Weight of moving already-placed workloads.
    pub migration: f64,
}

/// A weight specification that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    /// The preset name is not one of the known presets.
    #[error("unknown weights preset `{0}` (known: balanced, carbon, energy, latency)")]
    UnknownPreset(String),
    /// A `name=value` list could not be parsed.
    #[error("invalid weights `{input}`: {reason}")]
    Invalid {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Default for Weights {
    fn default() -> Self {
        Self::BALANCED
    }
}

impl Weights {
    /// Carbon first, energy and latency still count.
    pub const BALANCED: Self = Self {
        carbon: 3.0,
        energy: 1.0,
        latency: 1.0,
        migration: 0.5,
    };
    /// Minimise emissions; latency only as a tie-breaker (SLOs stay hard constraints).
    pub const CARBON: Self = Self {
        carbon: 1.0,
        energy: 0.1,
        latency: 0.05,
        migration: 0.1,
    };
    /// Minimise energy, whatever the grid.
    pub const ENERGY: Self = Self {
        carbon: 0.1,
        energy: 1.0,
        latency: 0.05,
        migration: 0.1,
    };
    /// Minimise latency to users.
    pub const LATENCY: Self = Self {
        carbon: 0.05,
        energy: 0.05,
        latency: 1.0,
        migration: 0.1,
    };

    /// Looks up a named preset.
    pub fn preset(name: &str) -> Result<Self, WeightsError> {
        match name {
            "balanced" => Ok(Self::BALANCED),
            "carbon" => Ok(Self::CARBON),
            "energy" => Ok(Self::ENERGY),
            "latency" => Ok(Self::LATENCY),
            other => Err(WeightsError::UnknownPreset(other.to_string())),
        }
    }

    /// Parses `carbon=3,energy=1,latency=1` (as in the `ecoplace.io/weights` annotation);
    /// objectives left out get 0. Values must be finite, ≥ 0, and not all 0.
    pub fn parse(input: &str) -> Result<Self, WeightsError> {
        let invalid = |reason: String| WeightsError::Invalid {
            input: input.to_string(),
            reason,
        };
        let mut w = Self {
            carbon: 0.0,
            energy: 0.0,
            latency: 0.0,
            migration: 0.0,
        };
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{part}` is not name=value")))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| invalid(format!("`{}` is not a number", v.trim())))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(format!("{k} must be a finite number ≥ 0")));
            }
            match k.trim() {
                "carbon" => w.carbon = v,
                "energy" => w.energy = v,
                "latency" => w.latency = v,
                "migration" => w.migration = v,
                other => return Err(invalid(format!("unknown objective `{other}`"))),
            }
        }
        if w.total() == 0.0 {
            return Err(invalid("at least one weight must be positive".into()));
        }
        Ok(w)
    }

    /// Sum of all weights.
    pub fn total(&self) -> f64 {
        self.carbon + self.energy + self.latency + self.migration
    }

    /// The same weights scaled to sum to 1.
    pub fn normalised(&self) -> Self {
        let t = self.total();
        Self {
            carbon: self.carbon / t,
            energy: self.energy / t,
            latency: self.latency / t,
            migration: self.migration / t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_annotation_syntax() {
        let w = Weights::parse("carbon=3, energy=1,latency=1").unwrap();
        assert_eq!(
            (w.carbon, w.energy, w.latency, w.migration),
            (3.0, 1.0, 1.0, 0.0)
        );
        assert!((w.normalised().total() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        for (bad, why) in [
            ("carbon", "not name=value"),
            ("carbon=x", "not a number"),
            ("carbon=-1", "≥ 0"),
            ("speed=1", "unknown objective"),
            ("carbon=0", "positive"),
        ] {
            let e = Weights::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(Weights::preset("greenest").is_err());
        assert_eq!(Weights::preset("carbon"), Ok(Weights::CARBON));
    }
}
