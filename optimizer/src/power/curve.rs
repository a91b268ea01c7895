//! Analytic power model: one PEAKS-form curve `P(u) = k0 + k1·e^(k2·u)` per node type.
//!
//! Curves are fitted by least squares from `(utilisation, watts)` samples with variable
//! projection: for a fixed `k2` the model is linear in `k0, k1` and is solved with an SVD; the
//! sum of squared errors is then minimised over `k2` by a grid scan followed by a golden-section
//! search. Node types without a fitted curve get one from their nameplate idle and maximum power.

use rustc_hash::FxHashMap;

use nalgebra::{DMatrix, DVector};

use super::{PowerCurve, PowerError, PowerModel, PowerQuery};

/// Curvature used for nameplate curves: the median `k2` fitted to the 37 published
/// SPECpower_ssj2008 curves in `optimizer/models/training-data.csv` (see `MODEL_CARD.md`).
pub const DEFAULT_NAMEPLATE_K2: f64 = 0.84;

/// Range of `k2` the fit searches; wider than any curvature seen in SPECpower data (−1.9..1.9).
pub const K2_SEARCH_RANGE: (f64, f64) = (-10.0, 10.0);

/// Smallest `|k2|` a curve is stored with: at 0 the exponential term is constant and the
/// curve cannot express a slope, so near-linear curves keep a tiny curvature instead.
const MIN_ABS_K2: f64 = 1e-6;
/// Points of the coarse scan that brackets the best `k2` before the golden-section search.
const GRID_POINTS: usize = 81;
/// Width of the final `k2` bracket.
const K2_TOLERANCE: f64 = 1e-7;

impl PowerCurve {
    /// A curve through nameplate figures: `P(0) = idle_watts`, `P(1) = max_watts`, with
    /// curvature `k2` (`|k2|` below 1e-6 is raised to 1e-6, which is linear to within 1e-7).
    pub fn from_idle_max(idle_watts: f64, max_watts: f64, k2: f64) -> Self {
        let k2 = stable_k2(k2);
        let k1 = (max_watts - idle_watts) / k2.exp_m1();
        Self {
            k0: idle_watts - k1,
            k1,
            k2,
        }
    }

    /// Least-squares PEAKS curve through `(utilisation, watts)` samples of one node type.
    ///
    /// Needs at least 3 finite samples with utilisation in `0..=1`, non-negative watts and at
    /// least 3 distinct utilisation values; otherwise fails with [`PowerError::Fit`] naming the
    /// node type and the reason.
    pub fn fit(node_type: &str, samples: &[(f64, f64)]) -> Result<Self, PowerError> {
        let fail = |reason: String| PowerError::Fit {
            node_type: node_type.to_string(),
            reason,
        };
        if samples.len() < 3 {
            return Err(fail(format!(
                "needs at least 3 samples, got {}",
                samples.len()
            )));
        }
        for (i, &(u, w)) in samples.iter().enumerate() {
            if !u.is_finite() || !w.is_finite() {
                return Err(fail(format!(
                    "sample {i} is not finite (utilisation {u}, watts {w})"
                )));
            }
            if !(0.0..=1.0).contains(&u) {
                return Err(fail(format!(
                    "sample {i} has utilisation {u}, outside 0..=1"
                )));
            }
            if w < 0.0 {
                return Err(fail(format!("sample {i} has negative power {w} W")));
            }
        }
        let mut distinct: Vec<f64> = samples.iter().map(|s| s.0).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        match distinct.len() {
            1 => {
                return Err(fail(format!(
                    "all {} samples have utilisation {}; the curve's shape is undetermined",
                    samples.len(),
                    distinct[0]
                )));
            }
            2 => {
                return Err(fail(
                    "samples cover only 2 distinct utilisation values; 3 are needed".to_string(),
                ));
            }
            _ => {}
        }

        let u = DVector::from_iterator(samples.len(), samples.iter().map(|s| s.0));
        let w = DVector::from_iterator(samples.len(), samples.iter().map(|s| s.1));
        let sse = |k2: f64| solve_linear(&u, &w, k2).map_or(f64::INFINITY, |(_, _, sse)| sse);

        // Coarse scan, then golden section inside the bracket around the best grid point.
        let (lo, hi) = K2_SEARCH_RANGE;
        let step = (hi - lo) / (GRID_POINTS - 1) as f64;
        let mut best = (f64::INFINITY, 0usize);
        for i in 0..GRID_POINTS {
            let e = sse(lo + step * i as f64);
            if e < best.0 {
                best = (e, i);
            }
        }
        if !best.0.is_finite() {
            return Err(fail(
                "least-squares solve failed for every curvature".to_string(),
            ));
        }
        let centre = lo + step * best.1 as f64;
        let k2 = golden_section(sse, (centre - step).max(lo), (centre + step).min(hi));
        let k2 = if sse(k2) <= best.0 { k2 } else { centre };

        let k2 = stable_k2(k2);
        let (a, b, _) = solve_linear(&u, &w, k2)
            .ok_or_else(|| fail(format!("least-squares solve failed at k2 = {k2}")))?;
        // Basis (e^(k2·u) − 1)/k2: P = a + b·(e^(k2·u) − 1)/k2 = (a − b/k2) + (b/k2)·e^(k2·u).
        let k1 = b / k2;
        let curve = Self { k0: a - k1, k1, k2 };
        if !(curve.k0.is_finite() && curve.k1.is_finite()) {
            return Err(fail(format!("fit produced a non-finite curve {curve:?}")));
        }
        Ok(curve)
    }
}

/// `k2` moved away from 0 by at least [`MIN_ABS_K2`], keeping its sign (0 becomes positive).
fn stable_k2(k2: f64) -> f64 {
    if k2.abs() < MIN_ABS_K2 {
        MIN_ABS_K2.copysign(if k2 == 0.0 { 1.0 } else { k2 })
    } else {
        k2
    }
}

/// For a fixed `k2`, the least-squares `(a, b)` of `w ≈ a + b·φ(u)` with the well-conditioned
/// basis `φ(u) = (e^(k2·u) − 1)/k2` (→ `u` as `k2` → 0), and the sum of squared errors.
fn solve_linear(u: &DVector<f64>, w: &DVector<f64>, k2: f64) -> Option<(f64, f64, f64)> {
    let n = u.len();
    let phi = |x: f64| {
        if k2.abs() < 1e-12 {
            x
        } else {
            (k2 * x).exp_m1() / k2
        }
    };
    let a = DMatrix::from_fn(n, 2, |i, j| if j == 0 { 1.0 } else { phi(u[i]) });
    let coef = a.clone().svd(true, true).solve(w, 1e-12).ok()?;
    let sse = (&a * &coef - w).norm_squared();
    (coef[0].is_finite() && coef[1].is_finite() && sse.is_finite())
        .then_some((coef[0], coef[1], sse))
}

/// Minimum of a unimodal `f` on `[lo, hi]` by golden-section search.
fn golden_section(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = hi - inv_phi * (hi - lo);
    let mut d = lo + inv_phi * (hi - lo);
    let (mut fc, mut fd) = (f(c), f(d));
    while hi - lo > K2_TOLERANCE {
        if fc <= fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - inv_phi * (hi - lo);
            fc = f(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + inv_phi * (hi - lo);
            fd = f(d);
        }
    }
    (lo + hi) / 2.0
}

/// Predicts incremental watts from per-node-type PEAKS curves; node types without a curve
/// use a nameplate curve through the query's idle and maximum power.
#[derive(Debug, Clone)]
pub struct CurvePowerModel {
    curves: FxHashMap<String, PowerCurve>,
    nameplate_k2: f64,
}

impl Default for CurvePowerModel {
    fn default() -> Self {
        Self::new()
    }
}

impl CurvePowerModel {
    /// A model without fitted curves (every node type uses its nameplate curve).
    pub fn new() -> Self {
        Self {
            curves: FxHashMap::default(),
            nameplate_k2: DEFAULT_NAMEPLATE_K2,
        }
    }

    /// Sets the curvature of nameplate curves (default [`DEFAULT_NAMEPLATE_K2`]).
    pub fn with_nameplate_k2(mut self, k2: f64) -> Self {
        self.nameplate_k2 = k2;
        self
    }

    /// Uses `curve` for `node_type`, replacing any curve it had.
    pub fn insert(&mut self, node_type: impl Into<String>, curve: PowerCurve) {
        self.curves.insert(node_type.into(), curve);
    }

    /// Fits a curve for `node_type` from `(utilisation, watts)` samples, stores and returns it.
    pub fn fit(
        &mut self,
        node_type: &str,
        samples: &[(f64, f64)],
    ) -> Result<PowerCurve, PowerError> {
        let curve = PowerCurve::fit(node_type, samples)?;
        self.curves.insert(node_type.to_string(), curve);
        Ok(curve)
    }

    /// The fitted curve of `node_type`, if any.
    pub fn curve(&self, node_type: &str) -> Option<&PowerCurve> {
        self.curves.get(node_type)
    }

    /// The curve a query is priced with: its node type's fitted curve, else its nameplate curve.
    pub fn curve_for(&self, query: &PowerQuery<'_>) -> PowerCurve {
        self.curves
            .get(query.node_type)
            .copied()
            .unwrap_or_else(|| {
                PowerCurve::from_idle_max(query.idle_watts, query.max_watts, self.nameplate_k2)
            })
    }
}

impl PowerModel for CurvePowerModel {
    fn name(&self) -> &str {
        "curve"
    }

    fn incremental_watts(
        &self,
        queries: &[PowerQuery<'_>],
        out: &mut [f64],
    ) -> Result<(), PowerError> {
        check_lengths(queries, out)?;
        for (i, (q, slot)) in queries.iter().zip(out.iter_mut()).enumerate() {
            check_query(i, q)?;
            let curve = self.curve_for(q);
            let u = q.utilisation.clamp(0.0, 1.0);
            let u_after = (u + q.added_utilisation().max(0.0)).min(1.0);
            let delta = curve.watts(u_after) - curve.watts(u);
            *slot = if delta.is_finite() {
                delta.max(0.0)
            } else {
                0.0
            };
        }
        Ok(())
    }
}

/// Fails unless `out` has one slot per query.
pub(crate) fn check_lengths(queries: &[PowerQuery<'_>], out: &[f64]) -> Result<(), PowerError> {
    if queries.len() == out.len() {
        Ok(())
    } else {
        Err(PowerError::Inference(format!(
            "{} queries but {} output slots",
            queries.len(),
            out.len()
        )))
    }
}

/// Fails if a query's numbers are not finite (they come from telemetry and requests).
pub(crate) fn check_query(i: usize, q: &PowerQuery<'_>) -> Result<(), PowerError> {
    let fields = [
        ("idle_watts", q.idle_watts),
        ("max_watts", q.max_watts),
        ("cpu_cores", q.cpu_cores),
        ("utilisation", q.utilisation),
        ("added_cpu_cores", q.added_cpu_cores),
    ];
    match fields.iter().find(|(_, v)| !v.is_finite()) {
        Some((name, v)) => Err(PowerError::Inference(format!(
            "query {i} (node type `{}`): {name} is {v}",
            q.node_type
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Tiny deterministic generator (64-bit LCG, Knuth's MMIX constants): uniform in [0, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Standard normal by Box–Muller.
        fn normal(&mut self) -> f64 {
            let (a, b) = (self.next().max(1e-300), self.next());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        }
    }

    fn noisy_samples(truth: PowerCurve, n: usize, sigma: f64, seed: u64) -> Vec<(f64, f64)> {
        let mut rng = Lcg(seed);
        (0..n)
            .map(|i| {
                let u = i as f64 / (n - 1) as f64;
                (u, truth.watts(u) + sigma * rng.normal())
            })
            .collect()
    }

    fn assert_within(label: &str, got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "{label}: got {got}, want {want} ±{:.1} %",
            rel * 100.0
        );
    }

    #[test]
    fn fit_recovers_known_parameters_from_noisy_samples() {
        for (truth, seed) in [
            (
                PowerCurve {
                    k0: 80.0,
                    k1: 20.0,
                    k2: 2.0,
                },
                1,
            ),
            (
                PowerCurve {
                    k0: 250.0,
                    k1: -150.0,
                    k2: -1.5,
                },
                2,
            ),
            (
                PowerCurve {
                    k0: 40.0,
                    k1: 10.0,
                    k2: 3.0,
                },
                3,
            ),
        ] {
            let samples = noisy_samples(truth, 200, 0.5, seed);
            let fit = PowerCurve::fit("t", &samples).unwrap();
            assert_within("k0", fit.k0, truth.k0, 0.05);
            assert_within("k1", fit.k1, truth.k1, 0.05);
            assert_within("k2", fit.k2, truth.k2, 0.05);
        }
    }

    #[test]
    fn exact_samples_are_fitted_exactly() {
        let truth = PowerCurve {
            k0: 100.0,
            k1: 5.0,
            k2: 2.5,
        };
        let samples: Vec<_> = (0..11)
            .map(|i| (i as f64 / 10.0, truth.watts(i as f64 / 10.0)))
            .collect();
        let fit = PowerCurve::fit("t", &samples).unwrap();
        for &(u, w) in &samples {
            assert!(
                (fit.watts(u) - w).abs() < 1e-6,
                "u {u}: {} vs {w}",
                fit.watts(u)
            );
        }
    }

    #[test]
    fn linear_samples_give_a_near_linear_curve() {
        let samples: Vec<_> = (0..11)
            .map(|i| (i as f64 / 10.0, 50.0 + 100.0 * i as f64 / 10.0))
            .collect();
        let fit = PowerCurve::fit("linear", &samples).unwrap();
        for &(u, w) in &samples {
            assert!(
                (fit.watts(u) - w).abs() < 1e-3,
                "u {u}: {} vs {w}",
                fit.watts(u)
            );
        }
    }

    #[test]
    fn bad_samples_are_rejected_with_node_type_and_reason() {
        let reason = |samples: &[(f64, f64)]| match PowerCurve::fit("gpu-a100", samples) {
            Err(PowerError::Fit { node_type, reason }) => {
                assert_eq!(node_type, "gpu-a100");
                reason
            }
            other => panic!("expected a fit error, got {other:?}"),
        };
        assert!(reason(&[(0.0, 1.0), (1.0, 2.0)]).contains("at least 3 samples"));
        assert!(reason(&[(0.0, 1.0), (f64::NAN, 2.0), (1.0, 3.0)]).contains("not finite"));
        assert!(reason(&[(0.0, 1.0), (0.5, f64::INFINITY), (1.0, 3.0)]).contains("not finite"));
        assert!(
            reason(&[(0.5, 1.0), (0.5, 2.0), (0.5, 3.0)])
                .contains("all 3 samples have utilisation 0.5")
        );
        assert!(reason(&[(0.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).contains("2 distinct"));
        assert!(reason(&[(0.0, 1.0), (1.5, 2.0), (1.0, 3.0)]).contains("outside 0..=1"));
        assert!(reason(&[(0.0, -1.0), (0.5, 2.0), (1.0, 3.0)]).contains("negative"));
    }

    #[test]
    fn nameplate_curve_passes_through_idle_and_max() {
        for k2 in [-2.0, 0.0, 1e-9, DEFAULT_NAMEPLATE_K2, 4.0] {
            let c = PowerCurve::from_idle_max(60.0, 300.0, k2);
            assert!(
                (c.watts(0.0) - 60.0).abs() < 1e-6,
                "k2 {k2}: P(0) = {}",
                c.watts(0.0)
            );
            assert!(
                (c.watts(1.0) - 300.0).abs() < 1e-6,
                "k2 {k2}: P(1) = {}",
                c.watts(1.0)
            );
        }
    }

    #[test]
    fn incremental_uses_fitted_curve_or_nameplate_and_clamps() {
        let mut model = CurvePowerModel::new();
        let truth = PowerCurve {
            k0: 90.0,
            k1: 10.0,
            k2: 2.0,
        };
        model.insert("std-x86", truth);
        let q = |node_type, utilisation, added| PowerQuery {
            node_type,
            idle_watts: 50.0,
            max_watts: 250.0,
            cpu_cores: 10.0,
            utilisation,
            added_cpu_cores: added,
        };
        let queries = [
            q("std-x86", 0.2, 2.0),
            q("unknown", 0.0, 10.0),
            q("std-x86", 0.9, 5.0),
            q("unknown", 0.3, 0.0),
        ];
        let mut out = [0.0; 4];
        model.incremental_watts(&queries, &mut out).unwrap();
        assert!((out[0] - (truth.watts(0.4) - truth.watts(0.2))).abs() < 1e-9);
        assert!(
            (out[1] - 200.0).abs() < 1e-6,
            "whole nameplate range: {}",
            out[1]
        );
        assert!(
            (out[2] - (truth.watts(1.0) - truth.watts(0.9))).abs() < 1e-9,
            "clamped at u = 1"
        );
        assert_eq!(out[3], 0.0);
        assert!(out.iter().all(|&w| w >= 0.0));
    }

    #[test]
    fn mismatched_lengths_and_non_finite_queries_are_errors() {
        let model = CurvePowerModel::new();
        let q = PowerQuery {
            node_type: "x",
            idle_watts: 50.0,
            max_watts: f64::NAN,
            cpu_cores: 4.0,
            utilisation: 0.1,
            added_cpu_cores: 1.0,
        };
        assert!(matches!(
            model.incremental_watts(&[q], &mut []),
            Err(PowerError::Inference(_))
        ));
        let err = model
            .incremental_watts(&[q], &mut [0.0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_watts"), "{err}");
    }
}
