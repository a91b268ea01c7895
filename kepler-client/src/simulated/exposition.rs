//! The simulated fleet as Kepler would export it, in either schema: Prometheus text for
//! scraping, OpenMetrics history for `promtool tsdb create-blocks-from openmetrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::power::SimZone;
use super::{SimulatedFleet, integrate};
use crate::schema::KeplerSchema;
use crate::training::DEFAULT_NODE_TYPE_LABEL as NODE_TYPE_LABEL;

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total (name ends in `_total`).
    Counter,
}

/// One metric family at one instant: rendered label sets and values.
#[derive(Debug, Clone)]
pub struct Family {
    /// Metric name (counters include `_total`).
    pub name: String,
    /// Help text.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: MetricType,
    /// `(labels rendered as k="v",..., value)`.
    pub series: Vec<(String, f64)>,
}

/// Cumulative joules since Kepler (re)started, advanced step by step.
#[derive(Debug, Clone)]
pub struct EnergyCounters {
    since: DateTime<Utc>,
    at: DateTime<Utc>,
    node_package: Vec<f64>,
    node_gpu: Vec<f64>,
    pod_active: Vec<f64>,
}

impl EnergyCounters {
    /// Counters that start at zero at `since`.
    pub fn new(fleet: &SimulatedFleet, since: DateTime<Utc>) -> Self {
        Self {
            since,
            at: since,
            node_package: vec![0.0; fleet.nodes.len()],
            node_gpu: vec![0.0; fleet.nodes.len()],
            pod_active: vec![0.0; fleet.pods.len()],
        }
    }

    /// The instant the counters describe.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// Advances the counters to `t` (no-op when `t` is not after the current instant).
    pub fn advance_to(&mut self, fleet: &SimulatedFleet, t: DateTime<Utc>) {
        if t <= self.at {
            return;
        }
        let (n, p) = (fleet.nodes.len(), fleet.pods.len());
        let joules = integrate(self.at, t, 2 * n + p, |t, out| {
            let states = fleet.node_states(t);
            for (i, s) in states.iter().enumerate() {
                out[i] = s.package_watts;
                out[n + i] = s.gpu_watts.unwrap_or(0.0);
            }
            out[2 * n..].copy_from_slice(&fleet.pod_active_watts(t, &states));
        });
        for i in 0..n {
            self.node_package[i] += joules[i];
            self.node_gpu[i] += joules[n + i];
        }
        for (a, j) in self.pod_active.iter_mut().zip(&joules[2 * n..]) {
            *a += j;
        }
        self.at = t;
    }

    /// Node `i`'s (total, idle) joules in `zone`.
    pub fn node_zone_joules(&self, fleet: &SimulatedFleet, i: usize, zone: SimZone) -> (f64, f64) {
        let elapsed = (self.at - self.since).as_seconds_f64();
        let ty = &fleet.node_types[fleet.nodes[i].node_type];
        let total = zone.slope() * self.node_package[i] + zone.watts(0.0) * elapsed;
        (total, zone.watts(ty.curve.idle()) * elapsed)
    }

    /// Pod `i`'s active joules in `zone`.
    pub fn pod_zone_joules(&self, i: usize, zone: SimZone) -> f64 {
        zone.slope() * self.pod_active[i]
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Adds the node-type label to a node series' labels, as a Kepler deployment that copies the
/// Kubernetes node label `node.kubernetes.io/instance-type` onto its series would.
fn with_node_type(labels: String, node_type: &str) -> String {
    format!("{labels},{NODE_TYPE_LABEL}=\"{}\"", esc(node_type))
}

struct Builder {
    families: Vec<Family>,
}

impl Builder {
    fn push(&mut self, name: &str, help: &'static str, kind: MetricType, labels: String, v: f64) {
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.series.push((labels, v)),
            None => self.families.push(Family {
                name: name.to_string(),
                help,
                kind,
                series: vec![(labels, v)],
            }),
        }
    }
}

impl SimulatedFleet {
    /// Kepler metric families of `cluster` (all clusters when `None`) in `zones` at the
    /// counters' instant. With `cluster_label`, every series carries that label (for
    /// backfills; a scrape gets it from the target instead).
    pub fn kepler_families(
        &self,
        schema: KeplerSchema,
        cluster: Option<usize>,
        cluster_label: Option<&str>,
        zones: &[SimZone],
        counters: &EnergyCounters,
    ) -> Vec<Family> {
        let t = counters.at();
        let states = self.node_states(t);
        let pod_watts = self.pod_active_watts(t, &states);
        let mut b = Builder {
            families: Vec::new(),
        };
        let base = |node: usize, node_label: &str| {
            let mut l = format!("{node_label}=\"{}\"", esc(&self.nodes[node].name));
            if let Some(cl) = cluster_label {
                let _ = write!(
                    l,
                    ",{cl}=\"{}\"",
                    esc(&self.clusters[self.nodes[node].cluster].name)
                );
            }
            l
        };
        let in_scope = |node: usize| cluster.is_none_or(|c| self.nodes[node].cluster == c);
        use MetricType::{Counter, Gauge};
        match schema {
            KeplerSchema::V010 => {
                for (i, s) in states.iter().enumerate().filter(|(i, _)| in_scope(*i)) {
                    let ty = &self.node_types[self.nodes[i].node_type];
                    let l = with_node_type(base(i, "node_name"), &ty.name);
                    for &z in zones {
                        // Package and DRAM come per socket (RAPL domain), psys once.
                        let parts = if z == SimZone::Psys { 1 } else { ty.sockets };
                        let (tj, ij) = counters.node_zone_joules(self, i, z);
                        for k in 0..parts {
                            let f = 1.0 / f64::from(parts);
                            let zl = format!(
                                "{l},zone=\"{}\",path=\"/sys/class/powercap/intel-rapl:{k}\"",
                                z.label()
                            );
                            b.push(
                                "kepler_node_cpu_watts",
                                "Power consumption of cpu at node level in watts",
                                Gauge,
                                zl.clone(),
                                f * s.zone_watts(z),
                            );
                            b.push(
                                "kepler_node_cpu_idle_watts",
                                "Power consumption of cpu in idle state at node level in watts",
                                Gauge,
                                zl.clone(),
                                f * s.zone_idle_watts(z),
                            );
                            b.push(
                                "kepler_node_cpu_active_watts",
                                "Power consumption of cpu in active state at node level in watts",
                                Gauge,
                                zl.clone(),
                                f * s.zone_active_watts(z),
                            );
                            b.push(
                                "kepler_node_cpu_joules_total",
                                "Energy consumption of cpu at node level in joules",
                                Counter,
                                zl.clone(),
                                f * tj,
                            );
                            b.push(
                                "kepler_node_cpu_idle_joules_total",
                                "Energy consumption of cpu in idle state at node level in joules",
                                Counter,
                                zl.clone(),
                                f * ij,
                            );
                            b.push(
                                "kepler_node_cpu_active_joules_total",
                                "Energy consumption of cpu in active state at node level in joules",
                                Counter,
                                zl,
                                f * (tj - ij),
                            );
                        }
                    }
                    b.push(
                        "kepler_node_cpu_usage_ratio",
                        "CPU usage ratio of a node (value between 0.0 and 1.0)",
                        Gauge,
                        l.clone(),
                        s.usage_ratio,
                    );
                    if let Some(g) = s.gpu_watts {
                        let gl = format!("{l},gpu=\"0\",zone=\"gpu\"");
                        b.push(
                            "kepler_node_gpu_watts",
                            "Power consumption of gpu at node level in watts",
                            Gauge,
                            gl.clone(),
                            g,
                        );
                        b.push(
                            "kepler_node_gpu_joules_total",
                            "Energy consumption of gpu at node level in joules",
                            Counter,
                            gl,
                            counters.node_gpu[i],
                        );
                    }
                }
                for (i, p) in self
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| in_scope(p.node))
                {
                    for &z in zones {
                        let l = format!(
                            "{},pod_id=\"{}\",pod_name=\"{}\",pod_namespace=\"{}\",state=\"running\",zone=\"{}\"",
                            base(p.node, "node_name"),
                            p.uid,
                            esc(&p.name),
                            esc(&p.namespace),
                            z.label()
                        );
                        b.push(
                            "kepler_pod_cpu_watts",
                            "Power consumption of cpu at pod level in watts",
                            Gauge,
                            l.clone(),
                            z.slope() * pod_watts[i],
                        );
                        b.push(
                            "kepler_pod_cpu_joules_total",
                            "Energy consumption of cpu at pod level in joules",
                            Counter,
                            l,
                            counters.pod_zone_joules(i, z),
                        );
                    }
                }
            }
            KeplerSchema::V07 => {
                for (i, _) in states.iter().enumerate().filter(|(i, _)| in_scope(*i)) {
                    let ty = &self.node_types[self.nodes[i].node_type];
                    let l = with_node_type(base(i, "instance"), &ty.name);
                    for &z in zones {
                        let parts = if z == SimZone::Psys { 1 } else { ty.sockets };
                        let (tj, ij) = counters.node_zone_joules(self, i, z);
                        let name = format!("kepler_node_{}_joules_total", z.v07_name());
                        for k in 0..parts {
                            let f = 1.0 / f64::from(parts);
                            for (mode, v) in [("dynamic", tj - ij), ("idle", ij)] {
                                let ml =
                                    format!("{l},mode=\"{mode}\",package=\"{k}\",source=\"rapl\"");
                                b.push(
                                    &name,
                                    "Aggregated RAPL value in joules",
                                    Counter,
                                    ml,
                                    f * v,
                                );
                            }
                        }
                    }
                    if self.node_types[self.nodes[i].node_type].gpu_watts.is_some() {
                        b.push(
                            "kepler_node_gpu_joules_total",
                            "Aggregated GPU value in joules",
                            Counter,
                            format!("{l},mode=\"dynamic\",source=\"nvidia\""),
                            counters.node_gpu[i],
                        );
                    }
                }
                for (i, p) in self
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| in_scope(p.node))
                {
                    let split: &[f64] = if p.containers.len() == 2 {
                        &[0.7, 0.3]
                    } else {
                        &[1.0]
                    };
                    for (ci, (cname, share)) in p.containers.iter().zip(split).enumerate() {
                        let l = format!(
                            "{},container_id=\"{}-{ci}\",container_name=\"{}\",container_namespace=\"{}\",pod_name=\"{}\"",
                            base(p.node, "instance"),
                            p.uid,
                            esc(cname),
                            esc(&p.namespace),
                            esc(&p.name)
                        );
                        for &z in zones {
                            let name = format!("kepler_container_{}_joules_total", z.v07_name());
                            let dynamic = share * counters.pod_zone_joules(i, z);
                            // v0.7 also spread idle energy over containers; ecoplace never
                            // attributes it, so it is exported to prove it is ignored.
                            b.push(
                                &name,
                                "Aggregated RAPL value in joules",
                                Counter,
                                format!("{l},mode=\"dynamic\""),
                                dynamic,
                            );
                            b.push(
                                &name,
                                "Aggregated RAPL value in joules",
                                Counter,
                                format!("{l},mode=\"idle\""),
                                0.25 * dynamic + 1.0,
                            );
                        }
                    }
                }
            }
        }
        b.families
    }
}

/// Renders families in the Prometheus text exposition format (version 0.0.4).
pub fn render_text(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| f.series.len() * 160).sum());
    for f in families {
        let kind = match f.kind {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
        };
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {kind}",
            f.name, f.help, f.name
        );
        for (labels, v) in &f.series {
            let _ = writeln!(out, "{}{{{labels}}} {v}", f.name);
        }
    }
    out
}

/// Samples `(unix seconds, value)` by rendered label set.
type SeriesHistory = BTreeMap<String, Vec<(i64, f64)>>;

/// OpenMetrics text of the fleet's joule counters in `zones` from `from` to `to` every
/// `step_s` seconds, counters starting at zero at `from`; every series carries
/// `cluster_label`.
/// Input for `promtool tsdb create-blocks-from openmetrics` (timestamps in seconds).
pub fn history_openmetrics(
    fleet: &SimulatedFleet,
    schema: KeplerSchema,
    cluster_label: &str,
    zones: &[SimZone],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_s: i64,
) -> String {
    let families =
        |c: &EnergyCounters| fleet.kepler_families(schema, None, Some(cluster_label), zones, c);
    history(
        fleet,
        families,
        |f| f.kind == MetricType::Counter,
        (from, to, step_s),
    )
}

/// OpenMetrics text of every node-level family (`kepler_node_*` gauges and joule counters,
/// no pods) in `zones` from `from` to `to` every `step_s` seconds; every series carries
/// `cluster_label`. Node history as a store that kept Kepler's gauges holds it (for
/// training-data exports); same format as [`history_openmetrics`].
pub fn node_history_openmetrics(
    fleet: &SimulatedFleet,
    schema: KeplerSchema,
    cluster_label: &str,
    zones: &[SimZone],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_s: i64,
) -> String {
    let families =
        |c: &EnergyCounters| fleet.kepler_families(schema, None, Some(cluster_label), zones, c);
    history(
        fleet,
        families,
        |f| f.name.starts_with("kepler_node_"),
        (from, to, step_s),
    )
}

/// Samples the families every step of `span` (from, to, step seconds) and renders the
/// ones `keep` selects as OpenMetrics.
fn history(
    fleet: &SimulatedFleet,
    families: impl Fn(&EnergyCounters) -> Vec<Family>,
    keep: impl Fn(&Family) -> bool,
    (from, to, step_s): (DateTime<Utc>, DateTime<Utc>, i64),
) -> String {
    let mut counters = EnergyCounters::new(fleet, from);
    // family -> (help, type, labels -> samples); BTreeMaps keep the output stable.
    let mut hist: BTreeMap<String, (&'static str, MetricType, SeriesHistory)> = BTreeMap::new();
    let mut t = from;
    while t <= to {
        counters.advance_to(fleet, t);
        for f in families(&counters) {
            if !keep(&f) {
                continue;
            }
            let entry = hist
                .entry(f.name)
                .or_insert((f.help, f.kind, BTreeMap::new()));
            for (labels, v) in f.series {
                entry.2.entry(labels).or_default().push((t.timestamp(), v));
            }
        }
        t += chrono::Duration::seconds(step_s.max(1));
    }
    let mut out = String::new();
    for (name, (help, kind, series)) in hist {
        let (family, kind) = match kind {
            MetricType::Counter => (name.strip_suffix("_total").unwrap_or(&name), "counter"),
            MetricType::Gauge => (name.as_str(), "gauge"),
        };
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for (labels, samples) in series {
            for (ts, v) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {v} {ts}");
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn counters_grow_by_the_integral_of_power() {
        let f = SimulatedFleet::embedded(1);
        let t0 = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
        let t1 = t0 + chrono::Duration::hours(2);
        let mut c = EnergyCounters::new(&f, t0);
        c.advance_to(&f, t0 + chrono::Duration::minutes(30));
        c.advance_to(&f, t1);
        let direct = f.node_energy_joules(t0, t1);
        let (pkg, _) = c.node_zone_joules(&f, 0, SimZone::Package);
        assert!((pkg - direct[0]).abs() < 1e-6 * direct[0]);
    }

    #[test]
    fn text_has_one_type_line_per_family() {
        let f = SimulatedFleet::embedded(1);
        let c = EnergyCounters::new(&f, Utc.timestamp_opt(0, 0).unwrap());
        let text =
            render_text(&f.kepler_families(KeplerSchema::V010, Some(0), None, &SimZone::ALL, &c));
        assert_eq!(
            text.matches("# TYPE kepler_node_cpu_watts gauge").count(),
            1
        );
        assert!(text.contains("zone=\"psys\""));
        assert!(!text.contains("fr-"), "only cluster 0 (de)");
        assert!(
            text.contains(
                "node_name=\"de-std-x86-0\",node_kubernetes_io_instance_type=\"std-x86\""
            )
        );
    }

    #[test]
    fn node_history_has_gauges_and_counters_but_no_pods() {
        let f = SimulatedFleet::embedded(1);
        let t0 = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
        let text = node_history_openmetrics(
            &f,
            KeplerSchema::V010,
            "cluster",
            &[SimZone::Package],
            t0,
            t0 + chrono::Duration::minutes(2),
            60,
        );
        assert!(text.contains("# TYPE kepler_node_cpu_usage_ratio gauge"));
        assert!(text.contains("# TYPE kepler_node_cpu_joules counter"));
        assert!(!text.contains("kepler_pod_"));
        assert!(text.ends_with("# EOF\n"));
        let samples = text
            .lines()
            .filter(|l| l.starts_with("kepler_node_cpu_usage_ratio{"))
            .count();
        assert_eq!(samples, 3 * f.nodes.len(), "3 steps per node");
    }
}
