//! Shared by the HTTP tests: the demo extender's router at a fixed instant.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{TimeZone, Utc};
use scheduler::config::Config;
use scheduler::runtime::{self, Service};

/// The demo service (simulated telemetry, 2020 curves) with its clock at 2020-03-04 12:00 UTC.
pub async fn demo_router(config: Config) -> Router {
    let mut parts = runtime::demo(config).expect("demo parts");
    parts.clock = Arc::new(|| {
        Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
            .single()
            .unwrap_or_default()
    });
    Service::start(parts, Duration::from_secs(3600))
        .await
        .expect("service starts")
        .router()
}
