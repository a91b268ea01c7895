//! The sustainability report of a real fleet (`ecoplace report`): energy and carbon from
//! Kepler history in Prometheus/Thanos (through `kepler_client::accounting`), the grid
//! carbon intensity, and the carbon ecoplace's extender says it avoided.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use kepler_client::PrometheusSource;
use kepler_client::accounting::{
    Accountant, AccountingError, EnergyReport, EnergyRequest, GroupBy, WindowEnergy,
};
use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::error::TelemetryError;
use serde::Serialize;

use super::{Block, Chart, Document, Mark, Series, Table, XAxis, num};

/// The extender's counter of estimated avoided emissions (scheduler/src/server/metrics.rs).
pub const AVOIDED_METRIC: &str = "ecoplace_carbon_avoided_grams_total";

/// What every figure of the report means.
pub const LEGEND: &[(&str, &str)] = &[
    (
        "energy kWh",
        "Kepler's joule counters over the period (Prometheus `increase()` per window, counter resets handled), ÷ 3.6e6, × PUE",
    ),
    (
        "carbon kgCO2e",
        "each window's energy × the mean grid intensity of the cluster's zone over that window, summed (never mean energy × mean intensity)",
    ),
    (
        "gCO2e/kWh",
        "carbon ÷ energy: the grid intensity the energy was drawn at; `-` when the zone's intensity is unknown",
    ),
    (
        "power kW",
        "a window's energy ÷ its length: mean power over the window, PUE included",
    ),
    (
        "carbon rate kgCO2e/h",
        "a window's emissions ÷ its length in hours",
    ),
    (
        "carbon avoided kgCO2e",
        "`increase(ecoplace_carbon_avoided_grams_total[period])`: the extender's estimate, per scheduled pod, of the emissions its preferred node saves over the pod's expected lifetime against the median passing node: an amount saved, never negative (a change would be written with its sign, negative = less)",
    ),
    (
        "-",
        "unknown (missing data or no carbon zone): never counted as zero",
    ),
];

/// What to report.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Period start.
    pub from: DateTime<Utc>,
    /// Period end.
    pub to: DateTime<Utc>,
    /// Grouping of the detail table.
    pub group_by: GroupBy,
    /// Window length of the time series and the carbon sums, seconds.
    pub step_s: i64,
    /// Power usage effectiveness applied to every energy figure.
    pub pue: f64,
    /// Namespaces listed in the top table.
    pub top: usize,
}

/// Where the report's data comes from.
pub struct Inputs<'a> {
    /// Kepler history.
    pub source: &'a PrometheusSource,
    /// Grid carbon intensity.
    pub carbon: &'a dyn CarbonIntensitySource,
    /// Cluster name → carbon zone.
    pub cluster_zones: &'a BTreeMap<String, String>,
    /// The carbon sources in words (for the report's sources line).
    pub carbon_description: String,
}

/// Energy and carbon of one group over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Cluster.
    pub cluster: String,
    /// Group within the cluster (the cluster itself for cluster rows).
    pub group: String,
    /// Energy, kWh (PUE applied).
    pub kwh: f64,
    /// Emissions, kgCO2e; `None` when unknown.
    pub kg_co2e: Option<f64>,
    /// Emissions per kWh, gCO2e/kWh; `None` when unknown.
    pub g_per_kwh: Option<f64>,
}

/// One cluster's windows: energy, intensity and emissions over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSeries {
    /// Cluster.
    pub cluster: String,
    /// Its carbon zone, if configured.
    pub zone: Option<String>,
    /// Windows with data, in time order.
    pub windows: Vec<WindowEnergy>,
}

/// The sustainability report of a fleet over a period (stable JSON keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SustainabilityReport {
    /// Prometheus/Thanos URL read.
    pub prometheus: String,
    /// Period start.
    pub from: DateTime<Utc>,
    /// Period end.
    pub to: DateTime<Utc>,
    /// Window length, seconds.
    pub step_s: i64,
    /// PUE applied.
    pub pue: f64,
    /// Kepler schema read.
    pub schema: String,
    /// Power zone read.
    pub zone: String,
    /// Carbon-intensity sources, in words.
    pub carbon_sources: String,
    /// Grouping of `groups`.
    pub group_by: GroupBy,
    /// Fleet energy (node counters, idle included), kWh.
    pub total_kwh: f64,
    /// Emissions of the clusters whose carbon is known, kgCO2e (`None`: none known).
    pub total_kg_co2e: Option<f64>,
    /// Energy those emissions cover, kWh.
    pub carbon_covered_kwh: f64,
    /// Emissions per covered kWh, gCO2e/kWh.
    pub mean_g_per_kwh: Option<f64>,
    /// Per cluster.
    pub clusters: Vec<Row>,
    /// Per group of `group_by`.
    pub groups: Vec<Row>,
    /// Namespaces with the most energy (pod counters: idle power excluded).
    pub top_namespaces: Vec<Row>,
    /// Per-cluster time series.
    pub series: Vec<ClusterSeries>,
    /// Carbon avoided by ecoplace's extender over the period, kgCO2e (`None`: the
    /// counter has no series in the period).
    pub carbon_avoided_kg: Option<f64>,
    /// Data gaps and unknowns, in words.
    pub gaps: Vec<String>,
}

/// The grouping's name as the command line spells it.
fn group_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Cluster => "cluster",
        GroupBy::Node => "node",
        GroupBy::Namespace => "namespace",
        GroupBy::Pod => "pod",
    }
}

fn rows(r: &EnergyReport) -> Vec<Row> {
    r.groups
        .iter()
        .map(|g| Row {
            cluster: g.cluster.clone(),
            group: g.group.clone(),
            kwh: g.kwh,
            kg_co2e: g.g_co2e.map(|g| g / 1000.0),
            g_per_kwh: g.g_co2e.filter(|_| g.kwh > 0.0).map(|c| c / g.kwh),
        })
        .collect()
}

/// Reads the history and builds the report; only the cluster energy is required, every
/// other part that is missing becomes a gap.
pub async fn build(inputs: &Inputs<'_>, req: &ReportRequest) -> Result<SustainabilityReport> {
    anyhow::ensure!(
        req.pue.is_finite() && req.pue >= 1.0,
        "--pue {} must be ≥ 1",
        req.pue
    );
    let accountant = Accountant {
        source: inputs.source,
        carbon: inputs.carbon,
        cluster_zones: inputs.cluster_zones,
    };
    let energy = |group_by| EnergyRequest {
        from: req.from,
        to: req.to,
        group_by,
        step_s: req.step_s,
        pue: req.pue,
    };
    let url = inputs.source.client().url().to_string();
    let by_cluster = accountant
        .energy(&energy(GroupBy::Cluster))
        .await
        .map_err(|e| match e {
            // Names the period itself.
            e @ AccountingError::NoData { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!(
                "reading node energy from {} to {}",
                req.from.to_rfc3339(),
                req.to.to_rfc3339()
            )),
        })?;
    let mut gaps = by_cluster.gaps.clone();
    let clusters = rows(&by_cluster);
    let mut optional = |r: Result<EnergyReport, AccountingError>, what: &str| match r {
        Ok(r) => {
            gaps.extend(r.gaps.iter().cloned());
            Some(r)
        }
        Err(e) => {
            gaps.push(format!("{what}: {e}"));
            None
        }
    };
    let by_ns = optional(
        accountant.energy(&energy(GroupBy::Namespace)).await,
        "no namespace energy",
    );
    let groups = match req.group_by {
        GroupBy::Cluster => clusters.clone(),
        GroupBy::Namespace => by_ns.as_ref().map(rows).unwrap_or_default(),
        g => optional(
            accountant.energy(&energy(g)).await,
            &format!("no {} energy", group_name(g)),
        )
        .as_ref()
        .map(rows)
        .unwrap_or_default(),
    };
    let mut top_namespaces = by_ns.as_ref().map(rows).unwrap_or_default();
    top_namespaces.sort_by(|a, b| b.kwh.total_cmp(&a.kwh));
    top_namespaces.truncate(req.top);

    let avoided = avoided_grams(inputs.source, req).await;
    let carbon_avoided_kg = match avoided {
        Ok(Some(g)) => Some(g / 1000.0),
        Ok(None) => {
            gaps.push(format!(
                "`{AVOIDED_METRIC}` has no series in the period: carbon avoided by ecoplace is unknown (is the extender scraped?)"
            ));
            None
        }
        Err(e) => {
            gaps.push(format!("carbon avoided by ecoplace is unknown: {e}"));
            None
        }
    };
    let known: Vec<&Row> = clusters.iter().filter(|r| r.kg_co2e.is_some()).collect();
    let known_kg: f64 = known.iter().filter_map(|r| r.kg_co2e).sum();
    let carbon_covered_kwh: f64 = known.iter().map(|r| r.kwh).sum();
    gaps.dedup();
    Ok(SustainabilityReport {
        prometheus: url,
        from: req.from,
        to: req.to,
        step_s: req.step_s,
        pue: req.pue,
        schema: by_cluster.schema.to_string(),
        zone: by_cluster.zone.clone(),
        carbon_sources: inputs.carbon_description.clone(),
        group_by: req.group_by,
        total_kwh: by_cluster.total_kwh,
        total_kg_co2e: (!known.is_empty()).then_some(known_kg),
        carbon_covered_kwh,
        mean_g_per_kwh: (carbon_covered_kwh > 0.0).then(|| known_kg * 1000.0 / carbon_covered_kwh),
        series: by_cluster
            .groups
            .iter()
            .map(|g| ClusterSeries {
                cluster: g.cluster.clone(),
                zone: inputs.cluster_zones.get(&g.cluster).cloned(),
                windows: g.windows.clone(),
            })
            .collect(),
        clusters,
        groups,
        top_namespaces,
        carbon_avoided_kg,
        gaps,
    })
}

/// `increase()` of the avoided-carbon counter over the period, grams; `None` when the
/// counter has no series.
async fn avoided_grams(
    source: &PrometheusSource,
    req: &ReportRequest,
) -> Result<Option<f64>, TelemetryError> {
    let span = (req.to - req.from).num_seconds();
    let q = format!("sum(increase({AVOIDED_METRIC}[{span}s]))");
    let v = source.client().query_instant(&q, req.to).await?;
    Ok(v.first()
        .map(|s| s.sample().value())
        .filter(|v| v.is_finite()))
}

impl SustainabilityReport {
    /// The report as a document (HTML and Markdown).
    pub fn document(&self) -> Document {
        let days = (self.to - self.from).num_seconds() as f64 / 86_400.0;
        let mut b = vec![Block::Facts(vec![
            (
                "Period".into(),
                format!(
                    "{} to {} ({days:.2} days), {}-minute windows",
                    self.from.to_rfc3339(),
                    self.to.to_rfc3339(),
                    self.step_s / 60
                ),
            ),
            (
                "Energy source".into(),
                format!(
                    "Kepler {} joule counters, power zone `{}`, from {}",
                    self.schema, self.zone, self.prometheus
                ),
            ),
            ("Carbon source".into(), self.carbon_sources.clone()),
            (
                "PUE".into(),
                format!(
                    "{} (every energy and carbon figure is IT energy × PUE)",
                    self.pue
                ),
            ),
            (
                "Units".into(),
                "energy kWh, emissions kgCO2e, intensity gCO2e/kWh, power kW".into(),
            ),
        ])];
        b.push(Block::Heading("Totals".into()));
        let avoided = match self.carbon_avoided_kg {
            Some(kg) => format!("{kg:.3} kgCO2e"),
            None => format!("unknown: `{AVOIDED_METRIC}` has no data in the period"),
        };
        let coverage = if self.total_kg_co2e.is_some() && self.carbon_covered_kwh < self.total_kwh {
            format!(
                " (covers {:.3} of {:.3} kWh: some clusters have no known intensity)",
                self.carbon_covered_kwh, self.total_kwh
            )
        } else {
            String::new()
        };
        b.push(Block::Facts(vec![
            (
                "Energy".into(),
                format!("{:.3} kWh (nodes, idle included)", self.total_kwh),
            ),
            (
                "Carbon".into(),
                format!("{} kgCO2e{coverage}", num(self.total_kg_co2e, 3)),
            ),
            (
                "Average intensity".into(),
                format!("{} gCO2e/kWh", num(self.mean_g_per_kwh, 1)),
            ),
            ("Carbon avoided by ecoplace".into(), avoided),
        ]));
        b.push(Block::Heading("Per cluster".into()));
        b.push(table(&self.clusters, false, "clusters"));
        if self.group_by != GroupBy::Cluster {
            b.push(Block::Heading(format!("Per {}", group_name(self.group_by))));
            if matches!(self.group_by, GroupBy::Namespace | GroupBy::Pod) {
                b.push(Block::Text(
                    "Pod energy: active power only (idle power is never attributed to workloads), so these rows add up to less than the cluster totals.".into(),
                ));
            }
            b.push(table(&self.groups, true, "this grouping"));
        }
        b.push(Block::Heading(
            "Power, carbon and grid intensity over time".into(),
        ));
        b.extend(self.charts().into_iter().map(Block::Chart));
        b.push(Block::Heading(format!(
            "Top {} namespaces by energy",
            self.top_namespaces.len()
        )));
        b.push(Block::Text(
            "Pod energy: active power only (idle power is never attributed to workloads).".into(),
        ));
        b.push(table(&self.top_namespaces, true, "namespaces"));
        b.push(Block::Heading("Data gaps".into()));
        if self.gaps.is_empty() {
            b.push(Block::Text(
                "None: every window of every cluster had energy and carbon data.".into(),
            ));
        } else {
            b.push(Block::List(self.gaps.clone()));
        }
        b.push(Block::Heading("What the figures mean".into()));
        b.push(Block::Legend(
            LEGEND
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        Document {
            title: "ecoplace sustainability report".into(),
            blocks: b,
        }
    }

    /// Power per cluster with each zone's intensity, and the carbon rate per cluster.
    fn charts(&self) -> Vec<Chart> {
        let hours = |w: &WindowEnergy| (w.end - w.start).num_seconds() as f64 / 3600.0;
        let mid = |w: &WindowEnergy| {
            ((w.start - self.from).num_seconds() as f64
                + (w.end - w.start).num_seconds() as f64 / 2.0)
                / 3600.0
        };
        let per_cluster = |f: &dyn Fn(&WindowEnergy) -> Option<f64>, suffix: &str, mark| {
            self.series
                .iter()
                .enumerate()
                .map(|(i, s)| Series {
                    name: format!("{}{suffix}", s.cluster),
                    points: s
                        .windows
                        .iter()
                        .filter_map(|w| Some((mid(w), f(w)?)))
                        .collect(),
                    mark,
                    colour: Some(i),
                })
                .collect::<Vec<_>>()
        };
        let x = XAxis::Time { origin: self.from };
        vec![
            Chart {
                title: "Power per cluster (kW, left) and grid intensity (gCO2e/kWh, right, dashed)"
                    .into(),
                x: x.clone(),
                y_label: "power kW".into(),
                series: per_cluster(&|w| Some(w.kwh / hours(w)), " kW", Mark::Line),
                right: Some((
                    "intensity gCO2e/kWh".into(),
                    per_cluster(&|w| w.g_per_kwh, " gCO2e/kWh", Mark::Dashed),
                )),
            },
            Chart {
                title: "Carbon emission rate per cluster (kgCO2e/h)".into(),
                x,
                y_label: "carbon rate kgCO2e/h".into(),
                series: per_cluster(
                    &|w| w.g_co2e.map(|g| g / 1000.0 / hours(w)),
                    " kgCO2e/h",
                    Mark::Line,
                ),
                right: None,
            },
        ]
    }

    /// The per-group table as CSV (one row per group, units in the column names).
    pub fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "cluster",
            "group",
            "energy_kwh",
            "carbon_kgco2e",
            "g_per_kwh",
        ])?;
        for r in &self.groups {
            w.write_record([
                r.cluster.clone(),
                r.group.clone(),
                format!("{}", r.kwh),
                r.kg_co2e.map(|v| v.to_string()).unwrap_or_default(),
                r.g_per_kwh.map(|v| v.to_string()).unwrap_or_default(),
            ])?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
        Ok(String::from_utf8(bytes)?)
    }
}

/// A table of rows (`group` adds the group column), or a line saying there is no data for
/// `what` (the reason is under the gaps).
fn table(rows: &[Row], group: bool, what: &str) -> Block {
    if rows.is_empty() {
        return Block::Text(format!(
            "No energy data for {what} in the period (see the data gaps)."
        ));
    }
    let mut head = vec!["cluster".to_string()];
    if group {
        head.push("group".into());
    }
    head.extend([
        "energy kWh".into(),
        "carbon kgCO2e".into(),
        "gCO2e/kWh".into(),
    ]);
    Block::Table(Table {
        left: if group { 2 } else { 1 },
        head,
        rows: rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.cluster.clone()];
                if group {
                    cells.push(r.group.clone());
                }
                cells.extend([
                    format!("{:.3}", r.kwh),
                    num(r.kg_co2e, 3),
                    num(r.g_per_kwh, 1),
                ]);
                cells
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::{Duration, TimeZone};

    use super::*;

    fn window(from: DateTime<Utc>, h: i64, kwh: f64, g: Option<f64>) -> WindowEnergy {
        WindowEnergy {
            start: from + Duration::hours(h),
            end: from + Duration::hours(h + 1),
            kwh,
            g_per_kwh: g,
            g_co2e: g.map(|g| g * kwh),
        }
    }

    #[test]
    fn report_states_unknowns_instead_of_zeros() {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let row = |c: &str, kwh: f64, kg: Option<f64>| Row {
            cluster: c.into(),
            group: c.into(),
            kwh,
            kg_co2e: kg,
            g_per_kwh: kg.map(|k| k * 1000.0 / kwh),
        };
        let clusters = vec![row("de", 2.0, Some(0.7)), row("lab", 1.0, None)];
        let r = SustainabilityReport {
            prometheus: "http://prom:9090".into(),
            from,
            to: from + Duration::hours(2),
            step_s: 3600,
            pue: 1.2,
            schema: "v0.10".into(),
            zone: "package".into(),
            carbon_sources: "constant DE=350".into(),
            group_by: GroupBy::Cluster,
            total_kwh: 3.0,
            total_kg_co2e: Some(0.7),
            carbon_covered_kwh: 2.0,
            mean_g_per_kwh: Some(350.0),
            groups: clusters.clone(),
            clusters,
            top_namespaces: vec![],
            series: vec![
                ClusterSeries {
                    cluster: "de".into(),
                    zone: Some("DE".into()),
                    windows: vec![
                        window(from, 0, 1.0, Some(350.0)),
                        window(from, 1, 1.0, Some(350.0)),
                    ],
                },
                ClusterSeries {
                    cluster: "lab".into(),
                    zone: None,
                    windows: vec![window(from, 0, 0.5, None), window(from, 1, 0.5, None)],
                },
            ],
            carbon_avoided_kg: None,
            gaps: vec!["cluster `lab` has no carbon zone: its emissions are unknown".into()],
        };
        let doc = r.document();
        let md = doc.markdown();
        assert!(md.contains("- Carbon avoided by ecoplace: unknown: `ecoplace_carbon_avoided_grams_total` has no data in the period"), "{md}");
        assert!(
            md.contains("0.700 kgCO2e (covers 2.000 of 3.000 kWh"),
            "{md}"
        );
        assert!(md.contains("| lab | 1.000 | - | - |"), "{md}");
        assert!(md.contains("No energy data for namespaces in the period"));
        assert!(md.contains("- PUE: 1.2"));
        let html = doc.html().unwrap();
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(!html.contains("NaN"));
        assert!(
            !html.contains("lab kgCO2e/h"),
            "no legend for a series without data"
        );
        let csv = r.csv().unwrap();
        assert_eq!(csv.lines().nth(2), Some("lab,lab,1,,"));
    }
}
