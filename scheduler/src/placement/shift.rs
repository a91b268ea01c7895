//! Deferrable workloads of a placement request (those with a `deadline`): when to start
//! each on the clusters its plan chose, from those clusters' carbon forecasts
//! (`optimizer::shift::choose_start`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use optimizer::shift::{DeferrableJob, LAST_POINT_HOLDS, ShiftCandidate, SlotBudget, choose_start};
use optimizer::{CarbonOutlook, Target, Workload};

use super::mapping::DEFAULT_DURATION_S;
use super::request::PlacementRequest;
use super::response::{ShiftReport, WorkloadPlacement};

/// Length of the start slots: starts are considered at every quarter hour.
const SLOT_MINUTES: i64 = 15;

/// The outlook of a run spread over clusters with `weights` (its watts on each): the
/// weighted mean of their step curves, itself a step curve.
fn blended(outlooks: &[(&CarbonOutlook, f64)]) -> CarbonOutlook {
    let total: f64 = outlooks.iter().map(|(_, w)| *w).sum();
    let weight = |w: f64| {
        if total > 0.0 {
            w / total
        } else {
            1.0 / outlooks.len().max(1) as f64
        }
    };
    let mut times: Vec<DateTime<Utc>> = outlooks
        .iter()
        .flat_map(|(o, _)| o.forecast.iter().map(|(t, _)| *t))
        .collect();
    times.sort();
    times.dedup();
    CarbonOutlook {
        now_g_per_kwh: outlooks
            .iter()
            .map(|(o, w)| weight(*w) * o.now_g_per_kwh)
            .sum(),
        forecast: times
            .into_iter()
            .map(|t| {
                let g = outlooks
                    .iter()
                    .map(|(o, w)| weight(*w) * o.intensity_at(t))
                    .sum();
                (t, g)
            })
            .collect(),
    }
}

/// Fills `start_at` and `shift` of every placement whose workload has a deadline. Runs
/// on the same clusters share a budget of their free cores per slot, so that deferrable
/// workloads of one request do not all pile into the cleanest quarter hour.
pub fn start_times(
    req: &PlacementRequest,
    workloads: &[Workload],
    targets: &[Target],
    at: DateTime<Utc>,
    placements: &mut [WorkloadPlacement],
) {
    let target = |name: &str| targets.iter().find(|t| t.name == name);
    let mut budgets: BTreeMap<String, SlotBudget> = BTreeMap::new();
    for (spec, placed) in req.workloads.iter().zip(placements.iter_mut()) {
        let Some(deadline) = spec.deadline else {
            continue;
        };
        let Some(w) = workloads.iter().find(|w| w.name == spec.name) else {
            continue;
        };
        let on: Vec<(&Target, u32)> = placed
            .clusters
            .iter()
            .filter_map(|c| target(&c.cluster).map(|t| (t, c.replicas)))
            .collect();
        if on.is_empty() {
            continue;
        }
        let watts: Vec<f64> = on
            .iter()
            .map(|(t, k)| {
                let per_core = (t.max_watts - t.idle_watts).max(0.0) / t.capacity.cpu.max(1e-9);
                f64::from(*k) * w.cpu_use() * per_core
            })
            .collect();
        let outlooks: Vec<(&CarbonOutlook, f64)> = on
            .iter()
            .zip(&watts)
            .map(|((t, _), w)| (&t.carbon, *w))
            .collect();
        let until = on
            .iter()
            .map(|(t, _)| {
                t.carbon
                    .forecast
                    .last()
                    .map_or(at, |(last, _)| *last + LAST_POINT_HOLDS)
            })
            .min()
            .unwrap_or(at);
        let key: Vec<&str> = on.iter().map(|(t, _)| t.name.as_str()).collect();
        let key = key.join("+");
        let free = on
            .iter()
            .map(|(t, _)| (t.capacity.cpu - t.allocated.cpu).max(0.0))
            .fold(f64::INFINITY, f64::min);
        let budget = budgets
            .entry(key.clone())
            .or_insert_with(|| SlotBudget::new(Duration::minutes(SLOT_MINUTES), free));
        let job = DeferrableJob {
            name: spec.name.clone(),
            duration: Duration::seconds(
                spec.expected_duration_seconds
                    .unwrap_or(DEFAULT_DURATION_S)
                    .ceil() as i64,
            ),
            cores: w.requests.cpu * f64::from(placed.replicas),
            earliest: at,
            deadline,
        };
        let candidate = ShiftCandidate {
            target: key,
            carbon: blended(&outlooks),
            forecast_until: until,
            watts: watts.iter().sum(),
        };
        let d = choose_start(&job, std::slice::from_ref(&candidate), budget);
        budget.reserve(&job, &d);
        placed.start_at = Some(d.start);
        placed.shift = Some(ShiftReport {
            reason: d.reason.as_str(),
            now_g_per_kwh: d.now_g_per_kwh,
            window_g_per_kwh: d.chosen_g_per_kwh,
            saved_g: d.saved_g(),
            explanation: d.explain(&job),
        });
    }
}
