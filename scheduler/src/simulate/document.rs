//! The simulation report as one report `Document`, rendered by `output` to report.md
//! (`Document::markdown`) and report.html (`Document::html`): the scenario, the policies
//! side by side, hourly power and carbon per policy against the grid intensity, the
//! carbon–latency Pareto front, the details, the clusters and the legend.

use super::pareto::{POINTS, ParetoSummary, PlanPoint};
use super::tables::{
    cluster_table, details_table, facts, legend, pareto_notes, pareto_table, policy_lines,
    results_table,
};
use super::{Fleet, PolicyRun, Report};
use crate::report::{Block, Chart, Document, Mark, Series, XAxis};

/// Hourly (x in hours from the start, value) series per policy: fleet power in kW and
/// carbon rate in kgCO2e/h; and per cluster the intensity in gCO2e/kWh.
fn hourly(
    report: &Report,
    runs: &[PolicyRun],
    fleet: &Fleet,
) -> (Vec<Series>, Vec<Series>, Vec<Series>) {
    let start = report.scenario.start;
    let hours = ((report.scenario.end - start).num_seconds() as f64 / 3600.0).ceil() as usize;
    let mut power = Vec::new();
    let mut carbon = Vec::new();
    let mut intensity: Vec<Vec<(f64, usize)>> = vec![vec![(0.0, 0); hours]; fleet.clusters.len()];
    for (i, run) in runs.iter().enumerate() {
        // hour -> (sum kW, sum kg/h, steps)
        let mut acc = vec![(0.0, 0.0, 0usize); hours];
        for st in &run.steps {
            let h = ((st.at - start).num_seconds() / 3600).max(0) as usize;
            let Some(slot) = acc.get_mut(h) else { continue };
            let mut kw = 0.0;
            let mut kg_h = 0.0;
            for (n, w) in st.node_watts.iter().enumerate() {
                let c = fleet.nodes[n].cluster;
                kw += w / 1000.0;
                kg_h +=
                    w / 1000.0 * st.cluster_intensity.get(c).copied().unwrap_or(f64::NAN) / 1000.0;
            }
            *slot = (slot.0 + kw, slot.1 + kg_h, slot.2 + 1);
            if i == 0 {
                for (c, g) in st.cluster_intensity.iter().enumerate() {
                    if let Some(v) = intensity.get_mut(c).and_then(|v| v.get_mut(h)) {
                        *v = (v.0 + g, v.1 + 1);
                    }
                }
            }
        }
        let mean = |f: fn(&(f64, f64, usize)) -> f64| {
            acc.iter()
                .enumerate()
                .filter(|(_, a)| a.2 > 0)
                .map(|(h, a)| (h as f64 + 0.5, f(a) / a.2 as f64))
                .collect()
        };
        let name = run.policy.name().to_string();
        power.push(Series {
            name: name.clone(),
            points: mean(|a| a.0),
            mark: Mark::Line,
            colour: None,
        });
        carbon.push(Series {
            name,
            points: mean(|a| a.1),
            mark: Mark::Line,
            colour: None,
        });
    }
    let intensity = fleet
        .clusters
        .iter()
        .zip(intensity)
        .map(|(c, v)| Series {
            name: format!("{} grid gCO2e/kWh", c.name),
            points: v
                .iter()
                .enumerate()
                .filter(|(_, a)| a.1 > 0)
                .map(|(h, a)| (h as f64 + 0.5, a.0 / a.1 as f64))
                .collect(),
            mark: Mark::Dashed,
            colour: None,
        })
        .collect();
    (power, carbon, intensity)
}

/// The Pareto section: what was swept, the chart, the table and what is missing.
fn pareto_blocks(p: &ParetoSummary, order: &[String]) -> Vec<Block> {
    let mut b = vec![
        Block::Heading("Carbon against latency: the Pareto front".into()),
        Block::Text(format!(
            "The MILP's ε-constraint mode (`optimizer::plan::pareto_front`) at {} (the hour with the most requested service CPU): {} services, {} replicas, placed afresh on every node of the fleet (all asleep: a plan pays the idle power of each node it wakes), {}-hour horizon. The total latency is bounded by ε, swept over {} values from its minimum to its value at the carbon optimum; under each bound the `carbon` policy's weights (carbon {}, energy {}, migration {}) are minimised. Each MILP policy's plan of the same instance is marked.",
            p.at.format("%Y-%m-%d %H:%M UTC"),
            p.services,
            p.replicas,
            p.horizon_h,
            POINTS,
            p.weights.carbon,
            p.weights.energy,
            p.weights.migration,
        )),
    ];
    let xy = |v: &PlanPoint| (v.mean_latency_ms, v.carbon_g);
    let mut series = vec![Series {
        name: "Pareto front".into(),
        points: p.front.iter().map(xy).collect(),
        mark: Mark::Points,
        colour: None,
    }];
    series.extend(p.policies.iter().map(|v| Series {
        name: format!("policy {}", v.source),
        points: vec![xy(v)],
        mark: Mark::Points,
        colour: None,
    }));
    b.push(Block::Chart(Chart {
        title: "Carbon over the horizon (gCO2e) against mean user latency (ms)".into(),
        x: XAxis::Value("mean latency ms".into()),
        y_label: "carbon gCO2e (horizon)".into(),
        series,
        right: None,
    }));
    b.push(Block::Table(pareto_table(p)));
    let notes = pareto_notes(p, order);
    if !notes.is_empty() {
        b.push(Block::List(notes));
    }
    b
}

/// The report of a simulation, for report.md and report.html (charts need `Settings::record_steps`).
pub fn document(report: &Report, runs: &[PolicyRun], fleet: &Fleet, command: &str) -> Document {
    let mut b = vec![Block::Facts(facts(report, command))];
    b.push(Block::Heading("Results".into()));
    b.push(Block::Table(results_table(report)));
    let (power, carbon, intensity) = hourly(report, runs, fleet);
    let x = XAxis::Time {
        origin: report.scenario.start,
    };
    b.push(Block::Heading("Power and carbon over time".into()));
    b.push(Block::Chart(Chart {
        title: "Fleet power per policy (kW, hourly mean)".into(),
        x: x.clone(),
        y_label: "power kW".into(),
        series: power,
        right: None,
    }));
    b.push(Block::Chart(Chart {
        title: "Carbon rate per policy (kgCO2e/h, left) and grid intensity per cluster (gCO2e/kWh, right, dashed)".into(),
        x,
        y_label: "carbon rate kgCO2e/h".into(),
        series: carbon,
        right: Some(("intensity gCO2e/kWh".into(), intensity)),
    }));
    match &report.pareto {
        Some(p) => b.extend(pareto_blocks(p, &report.order)),
        None => b.push(Block::Text(
            "No Pareto front: it is computed when the report is written with --out.".into(),
        )),
    }
    b.push(Block::Heading("Details".into()));
    b.push(Block::Table(details_table(report)));
    b.push(Block::Heading("Clusters".into()));
    b.push(Block::Table(cluster_table(report)));
    b.push(Block::Heading("Policies".into()));
    b.push(Block::List(policy_lines(&report.order)));
    b.push(Block::Heading("What the figures mean".into()));
    b.push(Block::Legend(legend()));
    Document {
        title: "ecoplace simulate: policies compared".into(),
        blocks: b,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::{TimeZone, Utc};

    use crate::simulate::{
        self, Fleet, GeneratorConfig, Policy, Scenario, Settings, pareto, tables, trace,
    };

    /// The scenario `ecoplace simulate --days 0.1 --policies default,balanced` runs (seed
    /// 42, embedded fleet, generated trace), built from `simulate` alone.
    fn scenario() -> Scenario {
        let (seed, days) = (42, 0.1);
        let start = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
        let mut trace = trace::generate(&GeneratorConfig::default(), seed, start, days);
        trace.sort_by(|a, b| a.arrive.cmp(&b.arrive).then_with(|| a.name.cmp(&b.name)));
        let mut settings = Settings::new(start, days);
        settings.record_steps = true;
        Scenario {
            fleet: Fleet::embedded(seed).unwrap(),
            trace,
            trace_origin: format!("generated (seed {seed})"),
            seed,
            settings,
            policies: vec![Policy::Default, Policy::Balanced],
        }
    }

    #[test]
    fn one_document_gives_report_html_with_every_chart_and_report_md_with_every_table() {
        let sc = scenario();
        let (mut report, runs) = simulate::simulate(&sc).unwrap();
        report.pareto = Some(pareto::sweep(&sc).unwrap());
        let p = report.pareto.as_ref().unwrap();
        assert!(!p.front.is_empty() && p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.policies.len(), 1, "balanced only: default has no plan");
        let doc = super::document(&report, &runs, &sc.fleet, "test");
        let html = doc.html().unwrap();
        assert_eq!(html.matches("<svg").count(), 3, "power, carbon, Pareto");
        assert_eq!(html.matches("</svg>").count(), 3);
        assert!(!html.contains("NaN"));
        assert!(html.contains("policy balanced") && html.contains("Pareto front"));
        assert!(!html.contains("no data to draw"));
        assert!(html.trim_end().ends_with("</html>"));
        let md = doc.markdown();
        assert!(md.contains("## Carbon against latency: the Pareto front"));
        assert!(md.contains("- Command: `test`"), "{md}");
        for table in [
            tables::results_table(&report),
            tables::details_table(&report),
            tables::cluster_table(&report),
            tables::pareto_table(p),
        ] {
            assert!(
                md.contains(&format!("| {} |", table.head.join(" | "))),
                "{md}"
            );
            for row in &table.rows {
                assert!(md.contains(&format!("| {} |", row.join(" | "))), "{md}");
            }
        }
        for (k, v) in tables::LEGEND.iter().chain(tables::CHART_LEGEND) {
            assert!(md.contains(&format!("- **{k}**: {v}")), "{k} in:\n{md}");
        }
        assert!(md.contains("- `balanced`: "), "{md}");
        assert!(
            md.contains("default place pod by pod without the MILP"),
            "{md}"
        );
    }
}
