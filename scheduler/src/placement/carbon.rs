//! Clusters given by carbon zone only: their intensity now and forecast read from the
//! server's carbon source (a live provider, curves, a metric) before a request is planned.

use chrono::{DateTime, Utc};
use kepler_client::carbon::CarbonIntensitySource;

use super::error::{FieldError, PlacementError};
use super::mapping::DEFAULT_DURATION_S;
use super::request::{ForecastPoint, PlacementRequest};

/// Fills `gPerKwh` (and, when the request gives none, the forecast over the longest
/// workload's run) of every cluster that names a `zone` but no intensity, from `source`
/// at the request's start (`at`, else `now`). A zone the source cannot answer for is an
/// invalid request naming the cluster and the source's reason — never a zero.
pub async fn fill(
    req: &mut PlacementRequest,
    source: &dyn CarbonIntensitySource,
    now: DateTime<Utc>,
) -> Result<(), PlacementError> {
    let start = req.at.unwrap_or(now);
    let longest = req
        .workloads
        .iter()
        .filter_map(|w| w.expected_duration_seconds)
        .filter(|d| d.is_finite() && *d > 0.0)
        .fold(DEFAULT_DURATION_S, f64::max)
        .min(7.0 * 86_400.0);
    let end = start + chrono::Duration::seconds(longest.ceil() as i64);
    let mut errors = Vec::new();
    for (i, c) in req.clusters.iter_mut().enumerate() {
        let (None, Some(zone)) = (c.carbon.g_per_kwh, c.carbon.zone.clone()) else {
            continue;
        };
        match source.intensity_at(&zone, start).await {
            Ok(g) => c.carbon.g_per_kwh = Some(g),
            Err(e) => {
                errors.push(FieldError {
                    field: format!("clusters[{i}].carbon.gPerKwh"),
                    message: format!("not given, and the carbon source has none: {e}"),
                });
                continue;
            }
        }
        if c.carbon.forecast.is_empty() {
            // A forecast shorter than the run is fine: the last value holds.
            if let Ok(points) = source.forecast(&zone, start, end).await {
                c.carbon.forecast = points
                    .iter()
                    .map(|p| ForecastPoint {
                        start: p.start,
                        g_per_kwh: p.g_per_kwh,
                    })
                    .collect();
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PlacementError::Invalid(errors))
    }
}
