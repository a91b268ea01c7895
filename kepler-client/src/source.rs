//! The one interface every power-telemetry backend implements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::TelemetryError;
use crate::snapshot::FleetSnapshot;

/// Something that can tell the fleet's power at a given time.
#[async_trait]
pub trait TelemetrySource: Send + Sync {
    /// Takes a snapshot as of `now` (the caller's clock; sources never read the clock).
    async fn snapshot(&self, now: DateTime<Utc>) -> Result<FleetSnapshot, TelemetryError>;

    /// A short human description (URL and schema, or "simulated fleet").
    fn describe(&self) -> String;
}
