//! Grid carbon intensity (gCO2e/kWh) per zone, looked up by time.
//!
//! Three kinds of source, all answering the same questions (intensity at an instant, a
//! piecewise-constant forecast over a window):
//! - [`CarbonCurves`]: in-memory curves per zone, either a constant (static table) or a
//!   sorted series of [`IntensityPoint`]s, loaded from the shared CSV format
//!   (`Time,Carbon Intensity`), from a Green Software Foundation carbon-aware-sdk forecast
//!   (JSON), or from the embedded 2020 hourly data of DE, FR and GB
//!   ([`CarbonCurves::embedded_2020`]);
//! - [`PrometheusCarbon`]: a Prometheus metric with one series per zone;
//! - anything else implementing [`CarbonIntensitySource`].
//!
//! A time outside a curve's coverage (including a gap inside it) is an error, never a
//! silent zero or an extrapolation.

mod curves;
pub mod live;
mod parse;
mod prometheus;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;

pub use curves::CarbonCurves;
pub use prometheus::{PrometheusCarbon, PrometheusCarbonConfig};

/// One piecewise-constant interval of a carbon-intensity curve: `[start, start + duration_s)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntensityPoint {
    /// Start of the interval (inclusive).
    pub start: DateTime<Utc>,
    /// Length of the interval in seconds.
    pub duration_s: i64,
    /// Carbon intensity over the interval, gCO2e/kWh.
    pub g_per_kwh: f64,
}

/// Everything that can go wrong while loading or looking up carbon intensity.
#[derive(Debug, thiserror::Error)]
pub enum CarbonError {
    /// The zone is not known to the source.
    #[error("unknown carbon zone `{zone}` (known zones: {})", fmt_known(.known))]
    UnknownZone {
        /// The zone that was asked for.
        zone: String,
        /// Every zone the source knows, sorted.
        known: Vec<String>,
    },
    /// The requested time (or window) is not covered by the zone's curve, or falls in a gap.
    #[error("{}", fmt_out_of_coverage(.zone, .from, .to, .coverage, .gap))]
    OutOfCoverage {
        /// The zone.
        zone: String,
        /// Requested instant, or start of the requested window.
        from: DateTime<Utc>,
        /// Requested instant again, or (exclusive) end of the requested window.
        to: DateTime<Utc>,
        /// What the curve covers: `[start, end)`.
        coverage: (DateTime<Utc>, DateTime<Utc>),
        /// The gap inside the coverage that the request hit, if that is the reason.
        gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
    /// A window whose end is not after its start.
    #[error("empty or inverted time window [{from}, {to})")]
    InvalidWindow {
        /// Start of the window.
        from: DateTime<Utc>,
        /// End of the window.
        to: DateTime<Utc>,
    },
    /// A carbon intensity that is negative, NaN or infinite.
    #[error(
        "invalid carbon intensity {value} for zone `{zone}` ({context}): must be a finite number of gCO2e/kWh >= 0"
    )]
    InvalidValue {
        /// The zone.
        zone: String,
        /// The offending value.
        value: f64,
        /// Where it came from (static table, a query and time, ...).
        context: String,
    },
    /// A series of points that is not a valid curve (unsorted, overlapping, empty, ...).
    #[error("invalid carbon-intensity series for zone `{zone}`: {message}")]
    InvalidSeries {
        /// The zone.
        zone: String,
        /// What is wrong.
        message: String,
    },
    /// A CSV or JSON input could not be parsed; `line` is 1-based.
    #[error("{source_name}: {}{message}", fmt_position(.line, .column))]
    Parse {
        /// File name (or other name) of the input.
        source_name: String,
        /// 1-based line of the problem, when known.
        line: Option<u64>,
        /// 1-based column of the problem, when known.
        column: Option<u64>,
        /// What is wrong, including the field or JSON path where known.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A metric query returned no series for the zone.
    #[error(
        "query `{query}` returned no series with {label}=\"{zone}\" (zones seen: {})",
        fmt_known(.seen)
    )]
    NoSeries {
        /// The PromQL query.
        query: String,
        /// The label holding the zone.
        label: String,
        /// The zone that was asked for.
        zone: String,
        /// Zones that did have series, sorted.
        seen: Vec<String>,
    },
    /// Invalid configuration of a carbon source; `field` names the setting.
    #[error("invalid carbon source configuration `{field}`: {message}")]
    Config {
        /// The setting.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The metric store failed to answer.
    #[error(transparent)]
    Query(#[from] TelemetryError),
    /// A live source's data for the zone is older than its limit (or it never had any).
    #[error("{}", fmt_stale(.zone, .source_name, .age_s, .limit_s, .last_error))]
    Stale {
        /// The zone.
        zone: String,
        /// The source (`electricitymaps`, `watttime`, `carbon-aware-sdk`).
        source_name: String,
        /// Seconds since its last successful refresh; none if it never had one.
        age_s: Option<f64>,
        /// The configured limit, seconds.
        limit_s: f64,
        /// Why the refreshes fail, when they do.
        last_error: Option<String>,
    },
    /// A live source could not be read (e.g. its history for a report).
    #[error("{source_name} for zone `{zone}`: {message}")]
    Fetch {
        /// The zone.
        zone: String,
        /// The source.
        source_name: String,
        /// What failed.
        message: String,
    },
}

fn fmt_stale(
    zone: &str,
    source: &str,
    age_s: &Option<f64>,
    limit_s: &f64,
    last_error: &Option<String>,
) -> String {
    let age = match age_s {
        Some(a) => format!("last refreshed {a:.0} s ago, limit {limit_s} s"),
        None => "never refreshed successfully".to_string(),
    };
    let why = last_error
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    format!("zone `{zone}`: {source} carbon data is stale ({age}){why}")
}

fn fmt_known(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

fn fmt_position(line: &Option<u64>, column: &Option<u64>) -> String {
    match (*line, *column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

fn fmt_out_of_coverage(
    zone: &str,
    from: &DateTime<Utc>,
    to: &DateTime<Utc>,
    coverage: &(DateTime<Utc>, DateTime<Utc>),
    gap: &Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> String {
    let (from, to, coverage, gap) = (*from, *to, *coverage, *gap);
    let what = if from == to {
        format!("at {}", from.to_rfc3339())
    } else {
        format!("for [{}, {})", from.to_rfc3339(), to.to_rfc3339())
    };
    let why = match gap {
        Some((a, b)) => format!(
            "; it falls in a gap of the data from {} to {}",
            a.to_rfc3339(),
            b.to_rfc3339()
        ),
        None => String::new(),
    };
    format!(
        "zone `{zone}` has no carbon intensity {what} (coverage [{}, {}){why})",
        coverage.0.to_rfc3339(),
        coverage.1.to_rfc3339()
    )
}

/// A source of grid carbon intensity per zone, queried by time.
#[async_trait::async_trait]
pub trait CarbonIntensitySource: Send + Sync {
    /// Carbon intensity (gCO2e/kWh) of `zone` at instant `t`.
    async fn intensity_at(&self, zone: &str, t: DateTime<Utc>) -> Result<f64, CarbonError>;

    /// Piecewise-constant intensity of `zone` over `[from, to)`, clipped to that window.
    async fn forecast(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError>;

    /// Time-weighted mean intensity of `zone` over `[from, to)` (from [`Self::forecast`]).
    async fn mean_over(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<f64, CarbonError> {
        let points = self.forecast(zone, from, to).await?;
        time_weighted_mean(&points).ok_or(CarbonError::InvalidWindow { from, to })
    }
}

/// Time-weighted mean of `points`; `None` when their total duration is not positive.
pub fn time_weighted_mean(points: &[IntensityPoint]) -> Option<f64> {
    let (sum, weight) = points
        .iter()
        .filter(|p| p.duration_s > 0)
        .fold((0.0, 0.0), |(s, w), p| {
            let d = p.duration_s as f64;
            (s + p.g_per_kwh * d, w + d)
        });
    (weight > 0.0).then(|| sum / weight)
}
