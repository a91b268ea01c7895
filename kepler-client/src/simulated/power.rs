//! Power curves of simulated hardware.

use serde::{Deserialize, Serialize};

/// Node power over CPU utilisation, the PEAKS form P(u) = K0 + K1·e^(K2·u), u in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerCurve {
    /// Constant term, watts.
    pub k0: f64,
    /// Exponential amplitude, watts.
    pub k1: f64,
    /// Exponential rate (dimensionless).
    pub k2: f64,
}

impl PowerCurve {
    /// The curve through P(0) = `idle` and P(1) = `max` with curvature `k2` (≠ 0).
    pub fn from_idle_max(idle: f64, max: f64, k2: f64) -> Self {
        let k1 = (max - idle) / (k2.exp() - 1.0);
        Self {
            k0: idle - k1,
            k1,
            k2,
        }
    }

    /// Power at utilisation `u` (clamped to 0..=1), watts.
    pub fn watts(&self, u: f64) -> f64 {
        self.k0 + self.k1 * (self.k2 * u.clamp(0.0, 1.0)).exp()
    }

    /// Idle power P(0), watts.
    pub fn idle(&self) -> f64 {
        self.k0 + self.k1
    }
}

/// A RAPL/platform zone of simulated hardware, derived from package power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimZone {
    /// CPU package (the curve itself).
    Package,
    /// Memory: 10 % of package power plus 3 W.
    Dram,
    /// Whole platform (psys): package + DRAM + 25 W of board, fans and disks.
    Psys,
}

impl SimZone {
    /// All zones, in exposition order.
    pub const ALL: [SimZone; 3] = [Self::Package, Self::Dram, Self::Psys];

    /// The zone's label value in Kepler v0.10.
    pub fn label(self) -> &'static str {
        match self {
            Self::Package => "package",
            Self::Dram => "dram",
            Self::Psys => "psys",
        }
    }

    /// The zone's name inside Kepler v0.7 metric names.
    pub fn v07_name(self) -> &'static str {
        match self {
            Self::Package => "package",
            Self::Dram => "dram",
            Self::Psys => "platform",
        }
    }

    /// Parses a zone name of either schema.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "package" => Some(Self::Package),
            "dram" => Some(Self::Dram),
            "psys" | "platform" => Some(Self::Psys),
            _ => None,
        }
    }

    /// Zone power for a given package power (affine, so idle and active split cleanly).
    pub fn watts(self, package: f64) -> f64 {
        match self {
            Self::Package => package,
            Self::Dram => 0.1 * package + 3.0,
            Self::Psys => 1.1 * package + 28.0,
        }
    }

    /// How much of a package-power change shows in this zone.
    pub fn slope(self) -> f64 {
        match self {
            Self::Package => 1.0,
            Self::Dram => 0.1,
            Self::Psys => 1.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_passes_through_idle_and_max() {
        let c = PowerCurve::from_idle_max(95.0, 310.0, 1.8);
        assert!((c.watts(0.0) - 95.0).abs() < 1e-9);
        assert!((c.watts(1.0) - 310.0).abs() < 1e-9);
        assert!(c.watts(0.5) < (95.0 + 310.0) / 2.0, "convex curve");
        assert_eq!(c.watts(2.0), c.watts(1.0));
    }
}
