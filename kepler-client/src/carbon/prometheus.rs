//! Carbon intensity from a Prometheus metric with one series per zone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::curves::{Seg, valid_intensity};
use super::{CarbonCurves, CarbonError, CarbonIntensitySource, IntensityPoint};
use crate::prom::PromClient;

/// Which metric holds carbon intensity and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PrometheusCarbonConfig {
    /// PromQL query returning gCO2e/kWh, one series per zone.
    pub query: String,
    /// Label of the query's series that holds the zone.
    #[serde(alias = "zone_label")]
    pub zone_label: String,
    /// Resolution of range queries (forecasts), in seconds.
    #[serde(rename = "stepSeconds", alias = "step_s")]
    pub step_s: f64,
}

impl Default for PrometheusCarbonConfig {
    fn default() -> Self {
        Self {
            query: "grid_carbon_intensity_g_per_kwh".into(),
            zone_label: "zone".into(),
            step_s: 300.0,
        }
    }
}

/// A [`CarbonIntensitySource`] reading a Prometheus (or Thanos) metric; series with the
/// same zone (e.g. scraped by two replicas) are averaged.
#[derive(Debug, Clone)]
pub struct PrometheusCarbon {
    client: PromClient,
    config: PrometheusCarbonConfig,
}

fn config_err(field: &str, message: &str) -> CarbonError {
    CarbonError::Config {
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PrometheusCarbonConfig {
    /// Checks the settings without touching the network: `(field, reason)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.query.trim().is_empty() {
            return Err(("query", "must not be empty"));
        }
        if !is_label_name(&self.zone_label) {
            return Err((
                "zoneLabel",
                "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            ));
        }
        if !(self.step_s.is_finite() && self.step_s >= 0.001) {
            return Err(("stepSeconds", "must be a positive number of seconds"));
        }
        Ok(())
    }
}

impl PrometheusCarbon {
    /// A source querying through `client`; checks the configuration.
    pub fn new(client: PromClient, config: PrometheusCarbonConfig) -> Result<Self, CarbonError> {
        config
            .check()
            .map_err(|(field, message)| config_err(field, message))?;
        Ok(Self { client, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &PrometheusCarbonConfig {
        &self.config
    }
}

/// Labels of one series.
type Labels = HashMap<String, String>;

/// The zones seen in `labels`, sorted, for error messages.
fn seen_zones<'a>(label: &str, labels: impl Iterator<Item = &'a Labels>) -> Vec<String> {
    labels
        .filter_map(|m| m.get(label).cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn no_series(config: &PrometheusCarbonConfig, zone: &str, seen: Vec<String>) -> CarbonError {
    CarbonError::NoSeries {
        query: config.query.clone(),
        label: config.zone_label.clone(),
        zone: zone.to_string(),
        seen,
    }
}

fn invalid_sample(config: &PrometheusCarbonConfig, zone: &str, value: f64, ts: f64) -> CarbonError {
    CarbonError::InvalidValue {
        zone: zone.to_string(),
        value,
        context: format!("query `{}`, sample at unix time {ts}", config.query),
    }
}

/// The mean value of the series labelled `zone` among instant-query results
/// `(labels, timestamp, value)`.
fn pick_instant(
    config: &PrometheusCarbonConfig,
    zone: &str,
    series: &[(&Labels, f64, f64)],
) -> Result<f64, CarbonError> {
    let label = config.zone_label.as_str();
    let mut sum = 0.0;
    let mut n = 0usize;
    for (labels, ts, value) in series {
        if labels.get(label).map(String::as_str) != Some(zone) {
            continue;
        }
        if !valid_intensity(*value) {
            return Err(invalid_sample(config, zone, *value, *ts));
        }
        sum += value;
        n += 1;
    }
    if n == 0 {
        return Err(no_series(
            config,
            zone,
            seen_zones(label, series.iter().map(|s| s.0)),
        ));
    }
    if n > 1 {
        tracing::debug!(query = %config.query, zone, series = n, "averaging carbon-intensity series of one zone");
    }
    Ok(sum / n as f64)
}

/// A curve for `zone` from range-query results `(labels, [(timestamp, value)])`: each
/// sample holds for one step (or until the next sample); missing steps become gaps.
fn curve_from_range(
    config: &PrometheusCarbonConfig,
    zone: &str,
    series: &[(&Labels, Vec<(f64, f64)>)],
) -> Result<CarbonCurves, CarbonError> {
    let label = config.zone_label.as_str();
    // Timestamp (ms) -> (sum, count) over the zone's series.
    let mut by_ts: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for (labels, samples) in series {
        if labels.get(label).map(String::as_str) != Some(zone) {
            continue;
        }
        for &(ts, value) in samples {
            if !valid_intensity(value) {
                return Err(invalid_sample(config, zone, value, ts));
            }
            let slot = by_ts
                .entry((ts * 1000.0).round() as i64)
                .or_insert((0.0, 0));
            slot.0 += value;
            slot.1 += 1;
        }
    }
    if by_ts.is_empty() {
        return Err(no_series(
            config,
            zone,
            seen_zones(label, series.iter().map(|s| s.0)),
        ));
    }
    let step = TimeDelta::try_milliseconds((config.step_s * 1000.0).round() as i64)
        .filter(|d| *d > TimeDelta::zero())
        .ok_or_else(|| config_err("stepSeconds", "must be a positive number of seconds"))?;
    let times: Vec<(i64, f64)> = by_ts
        .into_iter()
        .map(|(ms, (s, n))| (ms, s / n as f64))
        .collect();
    let mut segs = Vec::with_capacity(times.len());
    for (i, &(ms, g)) in times.iter().enumerate() {
        let start = DateTime::<Utc>::from_timestamp_millis(ms)
            .ok_or_else(|| invalid_sample(config, zone, g, ms as f64 / 1000.0))?;
        let mut end = start
            .checked_add_signed(step)
            .ok_or_else(|| invalid_sample(config, zone, g, ms as f64 / 1000.0))?;
        if let Some(next) = times
            .get(i + 1)
            .and_then(|&(n, _)| DateTime::<Utc>::from_timestamp_millis(n))
        {
            end = end.min(next);
        }
        segs.push(Seg { start, end, g });
    }
    let mut out = CarbonCurves::new();
    out.insert_series(zone.to_string(), segs);
    Ok(out)
}

#[async_trait::async_trait]
impl CarbonIntensitySource for PrometheusCarbon {
    /// Instant query at `t` (Prometheus' lookback applies), filtered on the zone label.
    async fn intensity_at(&self, zone: &str, t: DateTime<Utc>) -> Result<f64, CarbonError> {
        let vectors = self.client.query_instant(&self.config.query, t).await?;
        let series: Vec<_> = vectors
            .iter()
            .map(|v| (v.metric(), v.sample().timestamp(), v.sample().value()))
            .collect();
        pick_instant(&self.config, zone, &series)
    }

    /// Range query over `[from, to]` at the configured step, clipped to `[from, to)`; the
    /// window must be covered without missing steps (Prometheus holds only the past unless
    /// the metric itself is a forecast).
    async fn forecast(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError> {
        if from >= to {
            return Err(CarbonError::InvalidWindow { from, to });
        }
        let matrix = self
            .client
            .query_range(&self.config.query, from, to, self.config.step_s)
            .await?;
        let series: Vec<_> = matrix
            .iter()
            .map(|r| {
                let samples = r
                    .samples()
                    .iter()
                    .map(|s| (s.timestamp(), s.value()))
                    .collect::<Vec<_>>();
                (r.metric(), samples)
            })
            .collect();
        curve_from_range(&self.config, zone, &series)?.forecast(zone, from, to)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn labels(zone: &str) -> HashMap<String, String> {
        HashMap::from([
            (
                "__name__".to_string(),
                "grid_carbon_intensity_g_per_kwh".to_string(),
            ),
            ("zone".to_string(), zone.to_string()),
        ])
    }

    #[test]
    fn config_validation() {
        let client = PromClient::new(crate::prom::Endpoint::default()).unwrap();
        assert!(PrometheusCarbon::new(client.clone(), PrometheusCarbonConfig::default()).is_ok());
        for bad in [
            PrometheusCarbonConfig {
                query: " ".into(),
                ..Default::default()
            },
            PrometheusCarbonConfig {
                zone_label: "1zone".into(),
                ..Default::default()
            },
            PrometheusCarbonConfig {
                step_s: 0.0,
                ..Default::default()
            },
            PrometheusCarbonConfig {
                step_s: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                PrometheusCarbon::new(client.clone(), bad),
                Err(CarbonError::Config { .. })
            ));
        }
    }

    #[test]
    fn instant_filters_zone_and_averages_replicas() {
        let cfg = PrometheusCarbonConfig::default();
        let (de, fr, fr2) = (labels("DE"), labels("FR"), labels("FR"));
        let series = [(&de, 1.0, 300.0), (&fr, 1.0, 50.0), (&fr2, 1.0, 60.0)];
        assert_eq!(pick_instant(&cfg, "DE", &series).unwrap(), 300.0);
        assert_eq!(pick_instant(&cfg, "FR", &series).unwrap(), 55.0);
        let e = pick_instant(&cfg, "GB", &series).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CarbonError::NoSeries { .. }));
        assert!(msg.contains("grid_carbon_intensity_g_per_kwh"), "{msg}");
        assert!(msg.contains("zone=\"GB\""), "{msg}");
        assert!(msg.contains("zones seen: DE, FR"), "{msg}");
        let nan = [(&de, 1.0, f64::NAN)];
        assert!(matches!(
            pick_instant(&cfg, "DE", &nan),
            Err(CarbonError::InvalidValue { .. })
        ));
    }

    #[test]
    fn range_samples_become_steps_with_gaps() {
        let cfg = PrometheusCarbonConfig {
            step_s: 300.0,
            ..Default::default()
        };
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let ts = |min: i64| (t0.timestamp() + min * 60) as f64;
        let de = labels("DE");
        let other = labels("FR");
        let series = [
            (&de, vec![(ts(0), 100.0), (ts(5), 200.0), (ts(15), 400.0)]),
            (&other, vec![(ts(0), 1.0)]),
        ];
        let c = curve_from_range(&cfg, "DE", &series).unwrap();
        let m = |min: i64| t0 + TimeDelta::minutes(min);
        let f = c.forecast("DE", m(0), m(10)).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].g_per_kwh, 200.0);
        // 12:10–12:15 is missing: a gap.
        assert!(matches!(
            c.forecast("DE", m(0), m(20)),
            Err(CarbonError::OutOfCoverage { gap: Some(_), .. })
        ));
        assert_eq!(c.intensity_at("DE", m(17)).unwrap(), 400.0);
        assert!(matches!(
            curve_from_range(&cfg, "GB", &series),
            Err(CarbonError::NoSeries { .. })
        ));
    }
}
