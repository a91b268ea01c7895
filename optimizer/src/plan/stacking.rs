//! The power of replicas stacked on one target, on the target's own convex curve.
//!
//! Each pair is priced at the power one replica adds to the target as it runs now
//! ([`super::classes::Pair::watts`]). On a convex power curve `k` replicas together draw
//! more than `k` times that, so a plan priced per replica stacks pods and pays for it. Per
//! target the plan also pays the excess `max(0, F(L) − Σ linear)`: `L` is the load the plan
//! puts there (each replica's expected CPU cores times its share of the horizon), `F` the
//! target's incremental power over that load — sampled from the power model at whole
//! replicas of each class and a grid of [`GRID`] segments (at most [`MAX_SAMPLES`] + 1
//! samples), interpolated linearly (never below the convex curve, exact at the samples, so
//! one replica alone costs what it is priced) —
//! and `Σ linear` what the per-replica prices already count. With equal durations the
//! target's power is then exactly `F(L)` over the horizon. In the MILP it is one continuous
//! column per target above each segment's line (an epigraph: exact for a convex `F`).
//!
//! Targets whose sampled curve is not convex (a concave fit, `k2 < 0`), is linear, or
//! that can take one replica at most keep the per-replica prices alone: on a concave
//! curve those over-state what stacking costs.

use chrono::{DateTime, Duration, Utc};

use crate::cost::Objectives;
use crate::model::Target;
use crate::power::{PowerModel, PowerQuery};

use super::PlanError;
use super::classes::Pair;

/// Equal segments of the sampled load range (besides whole replicas of each class).
pub(crate) const GRID: usize = 48;
/// Samples are at least `1 / MAX_SAMPLES` of the load range apart.
pub(crate) const MAX_SAMPLES: usize = 48;

/// One target's convex power over added load.
#[derive(Debug, Clone)]
pub(crate) struct Stacking {
    /// `(load, incremental watts)` samples from `(0, 0)`, convex, load increasing.
    points: Vec<(f64, f64)>,
    /// Units of one watt over the horizon on this target (energy Wh, carbon g).
    pub per_watt: Objectives,
}

impl Stacking {
    /// The stacking of every target with pairs (one batched power-model call).
    pub fn of_targets(
        targets: &[Target],
        pairs: &[Pair],
        target_pairs: &[Vec<usize>],
        horizon: Duration,
        at: DateTime<Utc>,
        power: &dyn PowerModel,
    ) -> Result<Vec<Option<Stacking>>, PlanError> {
        let mut loads: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for (t, target) in targets.iter().enumerate() {
            let here = &target_pairs[t];
            let replicas: u32 = here.iter().map(|&p| pairs[p].upper).sum();
            let most: f64 = here
                .iter()
                .map(|&p| f64::from(pairs[p].upper) * pairs[p].load)
                .sum();
            // Utilisation cannot pass 1: beyond it the last segment's slope holds.
            let room = target.capacity.cpu * (1.0 - target.utilisation.clamp(0.0, 1.0));
            let top = most.min(room);
            if replicas < 2 || top <= 0.0 {
                continue;
            }
            // Whole replicas of one class land exactly on a sample; samples closer than
            // `top / MAX_SAMPLES` are merged (multiples first, then the grid).
            let mut whole: Vec<f64> = here
                .iter()
                .flat_map(|&p| {
                    (1..=pairs[p].upper)
                        .map(move |k| f64::from(k) * pairs[p].load)
                        .take_while(|&x| x <= top)
                })
                .filter(|&x| x > 0.0)
                .collect();
            whole.sort_by(f64::total_cmp);
            let gap = top / MAX_SAMPLES as f64;
            let mut l: Vec<f64> = Vec::new();
            for x in whole {
                if l.last().is_none_or(|&last| x - last >= gap) {
                    l.push(x);
                }
            }
            for k in 1..=GRID {
                let x = top * k as f64 / GRID as f64;
                let near = l.iter().any(|&y| (y - x).abs() < gap);
                if !near {
                    l.push(x);
                }
            }
            l.sort_by(f64::total_cmp);
            loads[t] = l;
        }
        let queries: Vec<PowerQuery<'_>> = targets
            .iter()
            .zip(&loads)
            .flat_map(|(t, l)| l.iter().map(move |&x| PowerQuery::placing(t, x)))
            .collect();
        let mut watts = vec![0.0; queries.len()];
        crate::power::predict(power, &queries, &mut watts)?;
        drop(queries);
        let hours = horizon.num_milliseconds().max(1) as f64 / 3.6e6;
        let mut next = 0;
        Ok(targets
            .iter()
            .zip(loads)
            .map(|(target, l)| {
                let n = l.len();
                let w = &watts[next..next + n];
                next += n;
                let points: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
                    .chain(l.into_iter().zip(w.iter().copied()))
                    .collect();
                let per_watt = Objectives {
                    energy_wh: hours,
                    carbon_g: hours / 1000.0 * target.carbon.mean_over(at, horizon),
                    ..Objectives::default()
                };
                Stacking::convex(points, per_watt)
            })
            .collect())
    }

    /// A stacking from samples starting at `(0, 0)`, or `None` when they are fewer than
    /// three, not convex, or linear (the per-replica prices are then exact or an over-
    /// statement).
    fn convex(points: Vec<(f64, f64)>, per_watt: Objectives) -> Option<Stacking> {
        if points.len() < 3 {
            return None;
        }
        let slopes: Vec<f64> = points
            .windows(2)
            .map(|s| (s[1].1 - s[0].1) / (s[1].0 - s[0].0))
            .collect();
        let scale = slopes.iter().fold(1e-12_f64, |m, s| m.max(s.abs()));
        let convex = slopes.windows(2).all(|s| s[1] >= s[0] - 1e-9 * scale);
        let first = slopes.first().copied().unwrap_or(0.0);
        let last = slopes.last().copied().unwrap_or(0.0);
        (convex && last - first > 1e-6 * scale).then_some(Stacking { points, per_watt })
    }

    /// Incremental watts at `load`: the samples interpolated, the last slope beyond them.
    pub fn watts(&self, load: f64) -> f64 {
        // The segment holding `load` (the first or the last beyond the samples).
        let i = self
            .points
            .partition_point(|p| p.0 < load)
            .clamp(1, self.points.len() - 1);
        let ((x0, y0), (x1, y1)) = (self.points[i - 1], self.points[i]);
        y0 + (y1 - y0) / (x1 - x0) * (load - x0)
    }

    /// Watts the plan pays beyond its per-replica prices at `load`, when those count
    /// `linear` watts.
    pub fn excess(&self, load: f64, linear: f64) -> f64 {
        (self.watts(load) - linear).max(0.0)
    }

    /// Each segment's line `(intercept, slope)`: the curve is their maximum (convex).
    pub fn lines(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points.windows(2).map(|s| {
            let slope = (s[1].1 - s[0].1) / (s[1].0 - s[0].0);
            (s[0].1 - slope * s[0].0, slope)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Stacking {
        let points = (0..=4).map(|k| (f64::from(k), f64::from(k * k))).collect();
        Stacking::convex(points, Objectives::default()).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn interpolates_a_convex_curve_exactly_at_its_samples_and_above_between() {
        let s = square();
        for k in 0..=4 {
            let x = f64::from(k);
            assert!((s.watts(x) - x * x).abs() < 1e-12);
        }
        assert!((s.watts(1.5) - 2.5).abs() < 1e-12);
        // Beyond the samples the last slope (7) holds.
        assert!((s.watts(5.0) - 23.0).abs() < 1e-12);
        // Two replicas of load 1 priced at 1 W each pay 2 W more together.
        assert!((s.excess(2.0, 2.0) - 2.0).abs() < 1e-12);
        assert_eq!(s.excess(1.0, 1.0), 0.0);
    }

    #[test]
    fn concave_and_linear_samples_keep_per_replica_prices() {
        let concave = (0..=4)
            .map(|k| (f64::from(k), f64::from(k).sqrt()))
            .collect();
        assert!(Stacking::convex(concave, Objectives::default()).is_none());
        let linear = (0..=4)
            .map(|k| (f64::from(k), 3.0 * f64::from(k)))
            .collect();
        assert!(Stacking::convex(linear, Objectives::default()).is_none());
    }
}
