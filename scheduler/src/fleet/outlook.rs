//! A zone's carbon outlook (the intensity now and the forecast ahead), shared by the fleet
//! view and the OCM score publisher.

use chrono::{DateTime, Utc};
use kepler_client::carbon::{CarbonError, CarbonIntensitySource};
use optimizer::CarbonOutlook;

/// A zone's carbon outlook from `from`: the intensity then, plus the source's forecast up
/// to `to` when it has one (none: the outlook is flat). Shared by the extender's view and
/// the OCM score publisher.
pub async fn outlook(
    source: &dyn CarbonIntensitySource,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<CarbonOutlook, CarbonError> {
    let now = source.intensity_at(zone, from).await?;
    let forecast = forecast_ahead(source, zone, from, to)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(zone, "carbon: no forecast ahead: {e}");
            Vec::new()
        });
    Ok(CarbonOutlook {
        now_g_per_kwh: now,
        forecast,
    })
}

/// The source's forecast of `zone` over `[from, to)` as step points; when the source
/// covers less (a 24-hour forecast for a 3-day deadline, a gap), the part it covers from
/// `from` on: a shorter forecast is still a forecast.
pub async fn forecast_ahead(
    source: &dyn CarbonIntensitySource,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, f64)>, CarbonError> {
    let points = |p: Vec<kepler_client::carbon::IntensityPoint>| {
        p.iter().map(|p| (p.start, p.g_per_kwh)).collect()
    };
    match source.forecast(zone, from, to).await {
        Ok(p) => Ok(points(p)),
        Err(CarbonError::OutOfCoverage {
            coverage: (start, end),
            gap,
            ..
        }) if start <= from && gap.is_none_or(|(g, _)| g > from) && end > from => {
            let cut = gap.map_or(end, |(g, _)| g).min(to);
            source.forecast(zone, from, cut).await.map(points)
        }
        Err(e) => Err(e),
    }
}
