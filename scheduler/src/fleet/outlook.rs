//! A zone's carbon outlook (the intensity now and the forecast ahead), shared by the fleet
//! view and the OCM score publisher.

use chrono::{DateTime, Utc};
use kepler_client::carbon::CarbonIntensitySource;
use optimizer::CarbonOutlook;

/// A zone's carbon outlook from `from`: the intensity then, plus the source's forecast up
/// to `to` when it has one (none: the outlook is flat). Shared by the extender's view and
/// the OCM score publisher.
pub async fn outlook(
    source: &dyn CarbonIntensitySource,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<CarbonOutlook, kepler_client::carbon::CarbonError> {
    let now = source.intensity_at(zone, from).await?;
    let forecast = source
        .forecast(zone, from, to)
        .await
        .map(|points| points.iter().map(|p| (p.start, p.g_per_kwh)).collect())
        .unwrap_or_default();
    Ok(CarbonOutlook {
        now_g_per_kwh: now,
        forecast,
    })
}
