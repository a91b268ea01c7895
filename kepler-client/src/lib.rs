//! Kepler power telemetry for ecoplace.
//!
//! Reads Kepler power metrics (both the v0.10+ and the v0.7 schema) from Prometheus or
//! Thanos Query, grid carbon intensity and user latency, and turns them into timestamped
//! [`FleetSnapshot`]s. Also accounts energy (J → kWh → gCO2e) over time ranges.
//! Sensors only: nothing here decides placement.

pub mod accounting;
pub mod carbon;
pub mod error;
pub mod latency;
pub mod matrix;
pub mod prom;
pub mod prometheus_source;
pub mod refresher;
pub mod schema;
pub mod simulated;
pub mod snapshot;
pub mod source;
pub mod training;

pub use error::TelemetryError;
pub use prometheus_source::{PrometheusConfig, PrometheusSource};
pub use refresher::{Refresher, TelemetryState};
pub use schema::{KeplerSchema, PowerZone};
pub use simulated::SimulatedFleet;
pub use snapshot::{ClusterPower, FleetSnapshot, NodePower, PodPower, Reading, Sample};
pub use source::TelemetrySource;
pub use training::{
    ExportSummary, TrainingError, TrainingExport, TrainingRow, export_training_data, training_rows,
};
