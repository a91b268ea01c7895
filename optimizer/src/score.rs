//! Fast per-pod scoring (the extender's prioritize path): for one replica of a workload,
//! the marginal cost of each objective on every target, normalised to a 0..=10 score.
//!
//! The terms are those of the placement MILP ([`cost::replica_cost`] plus
//! [`cost::wake_cost`] of a sleeping target over the workload's expected duration), and
//! so is the normalisation ([`Normalisers`] over the feasible targets), so the best-scored
//! target is the one the MILP would pick for this replica alone.
//!
//! Score: `10 · (1 − Σ_k w_k·n_k / Σ_k w_k)` with `n_k = (term_k − min_k) / spread_k` in
//! 0..=1; an infeasible target scores 0.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cost::{self, Contributions, Infeasibility, NormaliserBuilder, Normalisers, Objectives};
use crate::model::{Target, Workload};
use crate::power::{PowerError, PowerModel, PowerQuery};
use crate::weights::Weights;

/// The highest score.
pub const MAX_SCORE: f64 = 10.0;

/// One target's score for one replica of a workload, with what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetScore {
    /// Index of the target in the slice that was scored.
    pub target: usize,
    /// Whether one replica may run there.
    pub feasible: bool,
    /// Why not, when infeasible (empty otherwise).
    pub reasons: Vec<Infeasibility>,
    /// 0..=10, higher is better; 0 when infeasible.
    pub score: f64,
    /// Predicted incremental watts of the replica.
    pub incremental_watts: f64,
    /// The marginal cost in units: the replica's terms (energy over the expected duration,
    /// carbon, latency, migration) plus the cost of waking the target over that duration
    /// when it is off ([`cost::replica_cost`] + [`cost::wake_cost`]).
    pub units: Objectives,
    /// Weighted normalised contributions of each objective (measured from the best
    /// feasible target; zero when infeasible): the score's deductions.
    pub contributions: Contributions,
}

impl TargetScore {
    /// The score as the extender's integer 0..=10.
    pub fn rounded(&self) -> i64 {
        self.score.round().clamp(0.0, MAX_SCORE) as i64
    }
}

/// Scores every target for one replica of `workload`; one batched power-model call.
/// `targets` may be owned (`&[Target]`) or borrowed (`&[&Target]`, e.g. a request's subset).
pub fn score_targets<T: Borrow<Target>>(
    workload: &Workload,
    targets: &[T],
    weights: &Weights,
    at: DateTime<Utc>,
    power: &dyn PowerModel,
) -> Result<Vec<TargetScore>, PowerError> {
    let (scores, _) = score_targets_normalised(workload, targets, weights, at, power)?;
    Ok(scores)
}

/// [`score_targets`], also returning the normalisers the scores were computed with.
pub fn score_targets_normalised<T: Borrow<Target>>(
    workload: &Workload,
    targets: &[T],
    weights: &Weights,
    at: DateTime<Utc>,
    power: &dyn PowerModel,
) -> Result<(Vec<TargetScore>, Normalisers), PowerError> {
    let queries: Vec<PowerQuery<'_>> = targets
        .iter()
        .map(Borrow::borrow)
        .map(|t: &Target| PowerQuery::placing(t, workload.cpu_use()))
        .collect();
    let mut watts = vec![0.0; queries.len()];
    crate::power::predict(power, &queries, &mut watts)?;
    drop(queries);

    let duration = workload.duration();
    let latency = cost::NeutralLatency::of(workload, targets.iter().map(Borrow::borrow));
    let mut out = Vec::with_capacity(targets.len());
    let mut range = NormaliserBuilder::new();
    for (i, (target, &w)) in targets.iter().map(Borrow::borrow).zip(&watts).enumerate() {
        let reasons = cost::check_pair(workload, target, w);
        let replica = cost::replica_cost(workload, target, w, at, &latency);
        let wake = cost::wake_cost(target, duration, at);
        let units = replica.terms.add(&wake);
        let feasible = reasons.is_empty();
        if feasible {
            range.add(&units);
        }
        out.push(TargetScore {
            target: i,
            feasible,
            reasons,
            score: 0.0,
            incremental_watts: replica.incremental_watts,
            units,
            contributions: Contributions::default(),
        });
    }
    let normalisers = range.build();
    let total = weights.total();
    for s in out.iter_mut().filter(|s| s.feasible) {
        s.contributions = normalisers.contributions(&s.units, weights, true);
        let deduction = s.contributions.total() / total;
        s.score = if total > 0.0 && deduction.is_finite() {
            (MAX_SCORE * (1.0 - deduction)).clamp(0.0, MAX_SCORE)
        } else {
            MAX_SCORE
        };
    }
    Ok((out, normalisers))
}

/// Index of the best feasible target (highest score; lowest index on ties), if any.
pub fn best_target(scores: &[TargetScore]) -> Option<usize> {
    scores
        .iter()
        .filter(|s| s.feasible)
        .max_by(|a, b| a.score.total_cmp(&b.score).then(b.target.cmp(&a.target)))
        .map(|s| s.target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CarbonOutlook, Resources};
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    /// Linear test power model: (max − idle) · Δu.
    struct Linear;
    impl PowerModel for Linear {
        fn name(&self) -> &str {
            "linear"
        }
        fn incremental_watts(
            &self,
            q: &[PowerQuery<'_>],
            out: &mut [f64],
        ) -> Result<(), PowerError> {
            for (q, o) in q.iter().zip(out) {
                *o = (q.max_watts - q.idle_watts) * q.added_utilisation();
            }
            Ok(())
        }
    }

    fn node(name: &str, g: f64, ms: f64, on: bool) -> Target {
        Target {
            name: name.into(),
            capacity: Resources::new(16.0, 64e9, 0.0),
            idle_watts: 100.0,
            max_watts: 300.0,
            powered_on: on,
            carbon: CarbonOutlook::flat(g),
            latency_ms: BTreeMap::from([("eu".to_string(), ms)]),
            ..Target::default()
        }
    }

    /// Two cores for users in `eu`, within 50 ms.
    fn web() -> Workload {
        Workload {
            name: "web".into(),
            requests: Resources::new(2.0, 1e9, 0.0),
            latency_slo_ms: BTreeMap::from([("eu".to_string(), 50.0)]),
            ..Workload::default()
        }
    }

    #[test]
    fn greener_closer_awake_nodes_score_higher_and_infeasible_ones_zero() {
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let w = web();
        let targets = vec![
            node("dirty", 600.0, 10.0, true),
            node("green", 50.0, 10.0, true),
            node("asleep", 50.0, 10.0, false),
            node("far", 50.0, 80.0, true),
        ];
        let s = score_targets(&w, &targets, &Weights::BALANCED, at, &Linear).unwrap();
        assert_eq!(best_target(&s), Some(1));
        assert!((s[1].score - MAX_SCORE).abs() < 1e-12);
        assert!(s[0].score < s[1].score && s[2].score < s[1].score);
        assert!(!s[3].feasible && s[3].score == 0.0);
        assert!(matches!(s[3].reasons[0], Infeasibility::Latency { .. }));
        // Waking costs idle power over the workload's hour: 100 Wh more than awake.
        assert!((s[2].units.energy_wh - s[1].units.energy_wh - 100.0).abs() < 1e-9);
        // The worst feasible target loses every weighted point.
        let worst = s
            .iter()
            .filter(|s| s.feasible)
            .map(|s| s.score)
            .fold(10.0, f64::min);
        assert!((0.0..10.0).contains(&worst));
        assert_eq!(s[1].rounded(), 10);
    }

    #[test]
    fn a_target_whose_latency_is_unknown_passes_with_the_mean_of_the_known_ones() {
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let w = web();
        let mut unknown = node("unknown", 300.0, 0.0, true);
        unknown.latency_ms.clear();
        let targets = vec![
            node("near", 300.0, 10.0, true),
            node("far", 300.0, 30.0, true),
            unknown,
        ];
        let s = score_targets(&w, &targets, &Weights::LATENCY, at, &Linear).unwrap();
        assert!(s[2].feasible, "{:?}", s[2].reasons);
        // Neutral: the mean of the known latencies (20 ms), halfway between the others.
        assert!((s[2].units.latency_ms - 20.0).abs() < 1e-9);
        assert!(s[0].score > s[2].score && s[2].score > s[1].score);
        // A plan putting a replica there breaks no SLO either.
        let plan = BTreeMap::from([(
            "web".to_string(),
            BTreeMap::from([("unknown".to_string(), 1u32)]),
        )]);
        assert!(crate::validate_assignments(&plan, &[w], &targets, &Linear).is_empty());
    }
}
