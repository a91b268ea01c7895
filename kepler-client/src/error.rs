//! Typed errors of the telemetry library.

use std::time::Duration;

/// Everything that can go wrong while reading telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The metric store could not be reached (connection refused, DNS, TLS, ...).
    #[error("cannot reach Prometheus at {url}: {message}")]
    Unreachable {
        /// Base URL of the metric store.
        url: String,
        /// What the HTTP client reported.
        message: String,
    },
    /// A query did not answer within the per-query timeout (after all retries).
    #[error("query to {url} timed out after {after:?} ({attempts} attempt(s)): {query}")]
    Timeout {
        /// Base URL of the metric store.
        url: String,
        /// The PromQL query.
        query: String,
        /// Per-attempt timeout.
        after: Duration,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The metric store answered with an error (bad query, overload, ...).
    #[error("Prometheus at {url} rejected query `{query}`: {message}")]
    Query {
        /// Base URL of the metric store.
        url: String,
        /// The PromQL query.
        query: String,
        /// The error Prometheus returned.
        message: String,
    },
    /// The answer had a shape the query cannot produce (e.g. a scalar for a selector).
    #[error("unexpected result for `{query}`: expected {expected}")]
    UnexpectedResult {
        /// The PromQL query.
        query: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Neither Kepler schema has series in the store.
    #[error("no Kepler metrics found at {url}: tried {}", tried.join(", "))]
    NoKeplerMetrics {
        /// Base URL of the metric store.
        url: String,
        /// Every metric name that was tried, with its schema.
        tried: Vec<String>,
    },
    /// A metric the detected (or configured) schema requires has no series.
    #[error("Kepler metric `{metric}` (schema {schema}) has no series at {url}")]
    MissingMetric {
        /// The metric name.
        metric: String,
        /// The schema it belongs to.
        schema: String,
        /// Base URL of the metric store.
        url: String,
    },
    /// The metric has series, but none in the power zone asked for.
    #[error(
        "Kepler metric `{metric}` has no series in zone `{zone}` at {url}; its zones there: {}. Pick one with --zone (telemetry.prometheus.zone)",
        available.join(", ")
    )]
    ZoneMissing {
        /// The metric name.
        metric: String,
        /// The zone asked for.
        zone: String,
        /// The zones the metric has series in.
        available: Vec<String>,
        /// Base URL of the metric store.
        url: String,
    },
    /// Invalid configuration; `field` is the path of the offending field.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file (token, CA, certificate) could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TelemetryError {
    /// Whether retrying the same call can help (network trouble, overload), as opposed to a
    /// bad query or configuration.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }
}
