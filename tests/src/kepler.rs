//! The simulated fleet served as live Kepler exporters, one scrape job per cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use chrono::{DateTime, Utc};
use kepler_client::KeplerSchema;
use kepler_client::accounting::JOULES_PER_KWH;
use kepler_client::carbon::CarbonCurves;
use kepler_client::simulated::{EnergyCounters, SimZone, SimulatedFleet, render_text};

use crate::prometheus::{ExporterGuard, PrometheusServer, ScrapeJob, serve_text};

/// Live exporters of a fleet; dropping it stops them.
pub struct FleetExporters {
    /// One scrape job per cluster, labelled `cluster=<name>`.
    pub jobs: Vec<ScrapeJob>,
    /// Keeps the exporters running.
    pub guards: Vec<ExporterGuard>,
}

impl FleetExporters {
    /// A real Prometheus scraping these exporters every second.
    pub async fn prometheus(&self) -> Result<PrometheusServer> {
        PrometheusServer::builder()
            .scrape_interval(std::time::Duration::from_secs(1))
            .jobs(self.jobs.clone())
            .start()
            .await
    }
}

/// Serves each cluster of `fleet` as a Kepler exporter in `schema`, with wall-clock time
/// and joule counters starting now. v0.7 jobs honour the exposed `instance` label (the
/// node name), as a relabelled v0.7 deployment does.
pub async fn serve_fleet(
    fleet: Arc<SimulatedFleet>,
    schema: KeplerSchema,
) -> Result<FleetExporters> {
    serve_fleet_zones(fleet, schema, &SimZone::ALL).await
}

/// [`serve_fleet`] with the power zones `zones` only (a machine without RAPL psys, say).
pub async fn serve_fleet_zones(
    fleet: Arc<SimulatedFleet>,
    schema: KeplerSchema,
    zones: &'static [SimZone],
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
            render_text(&fleet_c.kepler_families(schema, Some(ci), None, zones, &c))
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

/// Expected (kWh, gCO2e) per cluster: exact integrals of the fleet's node power (or its
/// pods' power with `pods`), hour by hour against the same carbon curves.
pub fn expected_per_cluster(
    fleet: &SimulatedFleet,
    curves: &CarbonCurves,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    pods: bool,
) -> Result<BTreeMap<String, (f64, f64)>> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut start = from;
    while start < to {
        let end = (start + chrono::Duration::hours(1)).min(to);
        let joules = if pods {
            let j = fleet.pod_energy_joules(start, end);
            let mut per_node = vec![0.0; fleet.nodes.len()];
            for (p, v) in fleet.pods.iter().zip(j) {
                per_node[p.node] += v;
            }
            per_node
        } else {
            fleet.node_energy_joules(start, end)
        };
        for (n, j) in fleet.nodes.iter().zip(joules) {
            let c = &fleet.clusters[n.cluster];
            let g = curves.mean_over(&c.carbon_zone, start, end)?;
            let e = out.entry(c.name.clone()).or_default();
            e.0 += j / JOULES_PER_KWH;
            e.1 += j / JOULES_PER_KWH * g;
        }
        start = end;
    }
    Ok(out)
}
