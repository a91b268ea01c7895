//! The simulated fleet served as live Kepler exporters, one scrape job per cluster.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use chrono::Utc;
use kepler_client::KeplerSchema;
use kepler_client::simulated::{EnergyCounters, SimZone, SimulatedFleet, render_text};

use crate::prometheus::{ExporterGuard, ScrapeJob, serve_text};

/// Live exporters of a fleet; dropping it stops them.
pub struct FleetExporters {
    /// One scrape job per cluster, labelled `cluster=<name>`.
    pub jobs: Vec<ScrapeJob>,
    /// Keeps the exporters running.
    pub guards: Vec<ExporterGuard>,
}

/// Serves each cluster of `fleet` as a Kepler exporter in `schema`, with wall-clock time
/// and joule counters starting now. v0.7 jobs honour the exposed `instance` label (the
/// node name), as a relabelled v0.7 deployment does.
pub async fn serve_fleet(
    fleet: Arc<SimulatedFleet>,
    schema: KeplerSchema,
) -> Result<FleetExporters> {
    let counters = Arc::new(Mutex::new(EnergyCounters::new(&fleet, Utc::now())));
    let mut jobs = Vec::new();
    let mut guards = Vec::new();
    for (ci, cluster) in fleet.clusters.iter().enumerate() {
        let (fleet_c, counters_c) = (fleet.clone(), counters.clone());
        let (addr, guard) = serve_text(move || {
            let Ok(mut c) = counters_c.lock() else {
                return String::new();
            };
            c.advance_to(&fleet_c, Utc::now());
            render_text(&fleet_c.kepler_families(schema, Some(ci), None, &SimZone::ALL, &c))
        })
        .await?;
        let mut job = ScrapeJob::new(format!("kepler-{}", cluster.name), [addr.to_string()])
            .label("cluster", cluster.name.clone());
        if schema == KeplerSchema::V07 {
            job = job.honor_labels();
        }
        jobs.push(job);
        guards.push(guard);
    }
    Ok(FleetExporters { jobs, guards })
}
