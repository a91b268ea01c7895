//! Headroom: the CPU to keep ready (awake and unrequested) in a place so that the
//! scale-ups expected before a new node could boot land at once instead of waiting.
//!
//! Consolidating decisions (packing, draining, powering down) remove the slack a spread
//! fleet has by accident; a service that may only run in one place then waits for a boot
//! at its next scale-up. The reserve is what the services running there are expected to
//! grow by over the horizon (a forecast of their replica counts, e.g. the same time the day
//! before), plus a floor fraction of what they request now for growth no forecast saw.

use crate::score::{TargetScore, best_target};

/// One service's expected growth in a place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// CPU request of one replica, cores.
    pub cpu_per_replica: f64,
    /// Replicas running there now.
    pub replicas_now: u32,
    /// Replicas expected there at the peak of the horizon (forecast).
    pub replicas_expected: u32,
}

/// What to keep ready in a place: cores, in free blocks a replica can use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reserve {
    /// Cores to keep free.
    pub cores: f64,
    /// The largest replica the cores are for: a node's free cores count only in whole
    /// blocks of this size (slivers no replica fits in hold nothing); 0 counts them all.
    pub block: f64,
}

impl Reserve {
    /// Of a node's free cores, those that count towards the reserve (whole blocks).
    pub fn usable_on(&self, free: f64) -> f64 {
        let free = if free.is_finite() { free.max(0.0) } else { 0.0 };
        if self.block > 0.0 {
            (free / self.block + 1e-9).floor() * self.block
        } else {
            free
        }
    }

    /// Free cores of a place's awake nodes that count towards the reserve.
    pub fn usable(&self, free_per_node: impl IntoIterator<Item = f64>) -> f64 {
        free_per_node.into_iter().map(|f| self.usable_on(f)).sum()
    }

    /// The reserve raised to at least `burst` cores: the largest scale-up a place took in
    /// one step recently (new deployments and jumps no replica forecast saw).
    pub fn with_burst(self, burst: f64) -> Reserve {
        let burst = if burst.is_finite() { burst } else { 0.0 };
        Reserve {
            cores: self.cores.max(burst),
            ..self
        }
    }

    /// Whether `usable` cores (from [`Reserve::usable`]) keep the reserve.
    pub fn kept_by(&self, usable: f64) -> bool {
        usable + 1e-9 >= self.cores
    }
}

/// What to keep ready in a place: the forecast growth of the services there plus
/// `floor` × the cores they request now, in blocks of their largest replica (negative or
/// non-finite inputs count as 0).
pub fn reserve(growth: impl IntoIterator<Item = Growth>, floor: f64) -> Reserve {
    let floor = if floor.is_finite() {
        floor.max(0.0)
    } else {
        0.0
    };
    let mut out = Reserve::default();
    for g in growth {
        let cpu = if g.cpu_per_replica.is_finite() {
            g.cpu_per_replica.max(0.0)
        } else {
            0.0
        };
        let extra = g.replicas_expected.saturating_sub(g.replicas_now);
        out.cores += cpu * (f64::from(extra) + floor * f64::from(g.replicas_now));
        out.block = out.block.max(cpu);
    }
    out
}

/// The best-scored feasible target among those `keeps` says keep their place's headroom;
/// the best feasible target overall when none does (headroom is a preference, never a
/// reason to leave a pod pending).
pub fn best_keeping(scores: &[TargetScore], keeps: impl Fn(usize) -> bool) -> Option<usize> {
    let kept: Vec<TargetScore> = scores
        .iter()
        .filter(|s| s.feasible && keeps(s.target))
        .cloned()
        .collect();
    best_target(&kept).or_else(|| best_target(scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_forecast_growth_plus_a_floor() {
        let g = [
            // grows by 3 replicas of 2 cores
            Growth {
                cpu_per_replica: 2.0,
                replicas_now: 2,
                replicas_expected: 5,
            },
            // shrinks: only the floor
            Growth {
                cpu_per_replica: 1.0,
                replicas_now: 4,
                replicas_expected: 1,
            },
        ];
        // 2·3 + 0.1·(2·2 + 1·4), for replicas of up to 2 cores
        let r = reserve(g, 0.1);
        assert!((r.cores - 6.8).abs() < 1e-12);
        assert_eq!(r.block, 2.0);
        assert_eq!(reserve(g, f64::NAN).cores, 6.0);
        assert_eq!(reserve([], 0.5), Reserve::default());
    }

    #[test]
    fn only_free_blocks_a_replica_fits_in_count() {
        let r = Reserve {
            cores: 8.0,
            block: 4.0,
        };
        // 3 + 3 + 3 free cores: 9 in all, but no 4-core replica fits anywhere.
        assert_eq!(r.usable([3.0, 3.0, 3.0]), 0.0);
        assert!(!r.kept_by(r.usable([3.0, 3.0, 3.0])));
        // 9.5 free on one node holds two blocks; with 4 elsewhere the reserve is kept.
        assert_eq!(r.usable([9.5, 1.0]), 8.0);
        assert!(r.kept_by(r.usable([9.5, 4.0])));
        assert_eq!(r.usable_on(f64::NAN), 0.0);
        // A recent burst raises the reserve, never lowers it.
        assert_eq!(r.with_burst(20.0).cores, 20.0);
        assert_eq!(r.with_burst(2.0), r);
        assert_eq!(r.with_burst(f64::NAN), r);
        // Without a block every free core counts.
        assert_eq!(
            Reserve {
                cores: 1.0,
                block: 0.0
            }
            .usable([0.5, 0.25]),
            0.75
        );
    }

    #[test]
    fn headroom_is_a_preference_not_a_filter() {
        let score = |target: usize, score: f64, feasible: bool| TargetScore {
            target,
            feasible,
            reasons: Vec::new(),
            score,
            incremental_watts: 0.0,
            units: Default::default(),
            contributions: Default::default(),
        };
        let scores = [
            score(0, 9.0, true),
            score(1, 5.0, true),
            score(2, 10.0, false),
        ];
        // Target 0 would eat its place's headroom: the next best keeps it.
        assert_eq!(best_keeping(&scores, |t| t != 0), Some(1));
        // None keeps it: the best feasible all the same.
        assert_eq!(best_keeping(&scores, |_| false), Some(0));
    }
}
