//! The simulated fleet: clusters with a carbon zone, node types with PEAKS power curves,
//! nodes, and a user-region → cluster latency matrix. The embedded one mirrors
//! `kepler_client::SimulatedFleet`; a YAML fleet file describes any other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kepler_client::SimulatedFleet;
use kepler_client::carbon::CarbonCurves;
use kepler_client::latency::LatencyMatrix;
use kepler_client::simulated::{PowerCurve, SimZone};
use serde::{Deserialize, Serialize};

/// Background CPU use of an awake node (kubelet, Kepler, ...), as a utilisation ratio.
pub const SYSTEM_USAGE: f64 = 0.03;

/// A server type: capacity and whole-platform power curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeType {
    /// Type name, the power model's key (e.g. `std-x86`).
    pub name: String,
    /// Allocatable CPU cores.
    pub cores: f64,
    /// Allocatable memory, GiB.
    pub memory_gib: f64,
    /// Platform power over CPU utilisation, P(u) = k0 + k1·e^(k2·u), watts.
    pub curve: PowerCurve,
}

impl NodeType {
    /// Platform power when awake and idle, watts.
    pub fn idle_watts(&self) -> f64 {
        self.curve.idle()
    }

    /// Platform power at full CPU load, watts.
    pub fn max_watts(&self) -> f64 {
        self.curve.watts(1.0)
    }

    /// Platform power of an awake node whose pods use `used_cores`, watts.
    pub fn watts(&self, used_cores: f64) -> f64 {
        self.curve.watts(self.utilisation(used_cores))
    }

    /// CPU utilisation of an awake node whose pods use `used_cores` (system use included).
    pub fn utilisation(&self, used_cores: f64) -> f64 {
        (used_cores / self.cores + SYSTEM_USAGE).min(1.0)
    }
}

/// A cluster: where its nodes are and which grid feeds them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// Cluster name (the latency matrix's column).
    pub name: String,
    /// Carbon-intensity zone of its grid.
    pub carbon_zone: String,
}

/// A node of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Node name, unique in the fleet.
    pub name: String,
    /// Index into [`Fleet::clusters`].
    pub cluster: usize,
    /// Index into [`Fleet::node_types`].
    pub node_type: usize,
}

/// Everything the simulator knows about the hardware and the network.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Where the fleet came from (for the report).
    pub origin: String,
    /// Server types.
    pub node_types: Vec<NodeType>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Round-trip latency from each user region to each cluster, ms.
    pub latency: LatencyMatrix,
    /// Carbon intensity of every cluster's zone.
    pub carbon: CarbonCurves,
}

impl Fleet {
    /// The embedded fleet: `SimulatedFleet::embedded(seed)`'s clusters (DE, FR, GB), node
    /// types and nodes, platform (psys) power, the embedded latency matrix and the real
    /// 2020 carbon curves.
    pub fn embedded(seed: u64) -> Result<Self> {
        let sim = SimulatedFleet::embedded(seed);
        let node_types = sim
            .node_types
            .iter()
            .map(|t| NodeType {
                name: t.name.clone(),
                cores: t.cores,
                memory_gib: t.memory_gib,
                curve: psys_curve(&t.curve),
            })
            .collect();
        let clusters = sim
            .clusters
            .iter()
            .map(|c| Cluster {
                name: c.name.clone(),
                carbon_zone: c.carbon_zone.clone(),
            })
            .collect();
        let nodes = sim
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                cluster: n.cluster,
                node_type: n.node_type,
            })
            .collect();
        let carbon = CarbonCurves::embedded_2020().context("embedded 2020 carbon curves")?;
        let fleet = Self {
            origin: format!("embedded fleet (seed {seed})"),
            node_types,
            clusters,
            nodes,
            latency: LatencyMatrix::embedded(),
            carbon,
        };
        fleet.check()?;
        Ok(fleet)
    }

    /// Reads a YAML fleet file (format in docs/simulate.md); errors name the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read fleet file {}", path.display()))?;
        let de = serde_yaml::Deserializer::from_str(&text);
        let file: FleetFile = serde_path_to_error::deserialize(de).map_err(|e| {
            // serde_yaml starts its message with the field path too: say it once.
            let field = e.path().to_string();
            let mut reason = e.inner().to_string();
            while let Some(rest) = reason.strip_prefix(&format!("{field}: ")) {
                reason = rest.to_string();
            }
            match field.as_str() {
                "." => anyhow::anyhow!("fleet file {}: {reason}", path.display()),
                _ => anyhow::anyhow!("fleet file {}: {field}: {reason}", path.display()),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_spec(file, &path.display().to_string(), base)
            .with_context(|| format!("fleet file {}", path.display()))
    }

    /// Builds a fleet from a parsed fleet file; relative CSV paths are read from `base`.
    pub fn from_spec(file: FleetFile, origin: &str, base: &Path) -> Result<Self> {
        let mut node_types = Vec::new();
        for (i, t) in file.node_types.iter().enumerate() {
            let field = |f: &str| format!("nodeTypes[{i}].{f}");
            positive(t.cores, &field("cores"))?;
            positive(t.memory_gib, &field("memoryGib"))?;
            positive(t.idle_watts, &field("idleWatts"))?;
            if !(t.max_watts.is_finite() && t.max_watts > t.idle_watts) {
                bail!(
                    "{}: {} must be above idleWatts",
                    field("maxWatts"),
                    t.max_watts
                );
            }
            if !(t.curvature.is_finite() && t.curvature.abs() > 1e-6) {
                bail!(
                    "{}: {} must be a non-zero number",
                    field("curvature"),
                    t.curvature
                );
            }
            if node_types.iter().any(|n: &NodeType| n.name == t.name) {
                bail!("{}: node type `{}` is defined twice", field("name"), t.name);
            }
            node_types.push(NodeType {
                name: t.name.clone(),
                cores: t.cores,
                memory_gib: t.memory_gib,
                curve: PowerCurve::from_idle_max(t.idle_watts, t.max_watts, t.curvature),
            });
        }
        let mut carbon = CarbonCurves::embedded_2020().context("embedded 2020 carbon curves")?;
        let mut clusters = Vec::new();
        let mut nodes = Vec::new();
        for (ci, c) in file.clusters.iter().enumerate() {
            let field = |f: &str| format!("clusters[{ci}].{f}");
            if clusters.iter().any(|x: &Cluster| x.name == c.name) {
                bail!("{}: cluster `{}` is defined twice", field("name"), c.name);
            }
            let zone = match (&c.carbon_g_per_kwh, &c.carbon_csv) {
                (Some(_), Some(_)) => bail!(
                    "{}: give carbonGPerKwh or carbonCsv, not both",
                    field("carbonZone")
                ),
                (Some(g), None) => {
                    let zone = format!("static:{}", c.name);
                    let table = CarbonCurves::static_table([(zone.clone(), *g)])
                        .with_context(|| field("carbonGPerKwh"))?;
                    carbon = carbon.merge(table);
                    zone
                }
                (None, Some(csv)) => {
                    let zone = c.carbon_zone.clone().unwrap_or_else(|| c.name.clone());
                    let p: PathBuf = base.join(csv);
                    let curve = CarbonCurves::from_csv_file(zone.clone(), &p)
                        .with_context(|| field("carbonCsv"))?;
                    carbon = carbon.merge(curve);
                    zone
                }
                (None, None) => match &c.carbon_zone {
                    Some(z) => z.clone(),
                    None => bail!(
                        "{}: missing (or give carbonGPerKwh or carbonCsv)",
                        field("carbonZone")
                    ),
                },
            };
            for (ty, count) in &c.nodes {
                let Some(ti) = node_types.iter().position(|t| &t.name == ty) else {
                    bail!(
                        "{}: unknown node type `{ty}`",
                        field(&format!("nodes.{ty}"))
                    );
                };
                for k in 0..*count {
                    nodes.push(Node {
                        name: format!("{}-{}-{}", c.name, ty, k),
                        cluster: ci,
                        node_type: ti,
                    });
                }
            }
            clusters.push(Cluster {
                name: c.name.clone(),
                carbon_zone: zone,
            });
        }
        let latency = LatencyMatrix::new(file.latency_ms.clone())?;
        let fleet = Self {
            origin: origin.to_string(),
            node_types,
            clusters,
            nodes,
            latency,
            carbon,
        };
        fleet.check()?;
        Ok(fleet)
    }

    /// Checks the fleet can be simulated: nodes exist, every zone is known, every latency
    /// row names known clusters.
    fn check(&self) -> Result<()> {
        if self.nodes.is_empty() {
            bail!("the fleet has no nodes");
        }
        for c in &self.clusters {
            if self.carbon.coverage(&c.carbon_zone).is_none() {
                let known: Vec<&str> = self.carbon.zones().collect();
                bail!(
                    "cluster `{}`: unknown carbon zone `{}` (known: {})",
                    c.name,
                    c.carbon_zone,
                    known.join(", ")
                );
            }
        }
        for r in self.latency.regions() {
            for c in &self.clusters {
                if self.latency.latency_ms(r, &c.name).is_none() {
                    bail!("latencyMs.{r}: no latency to cluster `{}`", c.name);
                }
            }
        }
        Ok(())
    }

    /// The user regions of the latency matrix.
    pub fn regions(&self) -> Vec<String> {
        self.latency.regions().map(str::to_string).collect()
    }

    /// Latency from users in `region` to node `node`'s cluster, ms.
    pub fn latency_ms(&self, region: &str, node: usize) -> Option<f64> {
        self.latency
            .latency_ms(region, &self.clusters[self.nodes[node].cluster].name)
    }

    /// Round-trip latency from `region` to cluster `cluster` (index), when known.
    pub fn cluster_latency_ms(&self, region: &str, cluster: usize) -> Option<f64> {
        self.latency
            .latency_ms(region, &self.clusters[cluster].name)
    }

    /// The type of node `node`.
    pub fn node_type(&self, node: usize) -> &NodeType {
        &self.node_types[self.nodes[node].node_type]
    }

    /// Total allocatable CPU cores.
    pub fn total_cores(&self) -> f64 {
        (0..self.nodes.len()).map(|n| self.node_type(n).cores).sum()
    }
}

/// The whole-platform (psys) curve of a package curve: 1.1 × package + 28 W of board,
/// fans, disks and DRAM (kepler-client's simulated psys zone), still of the PEAKS form.
fn psys_curve(package: &PowerCurve) -> PowerCurve {
    let (slope, idle) = (SimZone::Psys.slope(), SimZone::Psys.watts(0.0));
    PowerCurve {
        k0: slope * package.k0 + idle,
        k1: slope * package.k1,
        k2: package.k2,
    }
}

fn positive(v: f64, field: &str) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{field}: {v} must be a positive number");
    }
    Ok(())
}

/// A fleet file as written (YAML, camelCase keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetFile {
    /// Server types.
    pub node_types: Vec<NodeTypeSpec>,
    /// Clusters.
    pub clusters: Vec<ClusterSpec>,
    /// Round-trip latency by user region, then cluster, ms.
    pub latency_ms: BTreeMap<String, BTreeMap<String, f64>>,
}

/// A server type in a fleet file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTypeSpec {
    /// Type name.
    pub name: String,
    /// Allocatable cores.
    pub cores: f64,
    /// Allocatable memory, GiB.
    pub memory_gib: f64,
    /// Platform power idle, watts.
    pub idle_watts: f64,
    /// Platform power at full CPU load, watts.
    pub max_watts: f64,
    /// PEAKS curvature k2 (> 0 convex, < 0 concave).
    #[serde(default = "default_curvature")]
    pub curvature: f64,
}

fn default_curvature() -> f64 {
    1.5
}

/// A cluster in a fleet file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name.
    pub name: String,
    /// Carbon zone: `DE`, `FR`, `GB` (embedded 2020 curves) or the zone of `carbonCsv`.
    #[serde(default)]
    pub carbon_zone: Option<String>,
    /// A constant carbon intensity instead of a zone curve, gCO2e/kWh.
    #[serde(default)]
    pub carbon_g_per_kwh: Option<f64>,
    /// A CSV curve (`Time,Carbon Intensity`), relative to the fleet file.
    #[serde(default)]
    pub carbon_csv: Option<String>,
    /// How many nodes of each type.
    pub nodes: BTreeMap<String, u32>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn embedded_fleet_has_three_clusters_and_psys_power() {
        let f = Fleet::embedded(42).expect("embedded fleet");
        assert_eq!(f.clusters.len(), 3);
        assert_eq!(f.nodes.len(), 24);
        let std = &f.node_types[0];
        assert!((std.idle_watts() - (1.1 * 95.0 + 28.0)).abs() < 1e-9);
        assert!((std.max_watts() - (1.1 * 310.0 + 28.0)).abs() < 1e-9);
    }

    #[test]
    fn fleet_file_errors_name_the_field() {
        let yaml = "nodeTypes:\n- {name: a, cores: 8, memoryGib: 32, idleWatts: 50, maxWatts: 40}\nclusters: []\nlatencyMs: {}\n";
        let file: FleetFile = serde_yaml::from_str(yaml).expect("parses");
        let e = Fleet::from_spec(file, "t", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("nodeTypes[0].maxWatts"), "{e}");
        let yaml = "nodeTypes:\n- {name: a, cores: 8, memoryGib: 32, idleWatts: 50, maxWatts: 90}\nclusters:\n- {name: x, carbonZone: DE, nodes: {b: 2}}\nlatencyMs: {}\n";
        let file: FleetFile = serde_yaml::from_str(yaml).expect("parses");
        let e = Fleet::from_spec(file, "t", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("clusters[0].nodes.b"), "{e}");
    }

    #[test]
    fn fleet_file_errors_state_the_path_and_the_field_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fleet.yaml");
        let file = p.display().to_string();
        let message = |yaml: &str| {
            std::fs::write(&p, yaml).unwrap();
            format!("{:#}", Fleet::from_file(&p).unwrap_err())
        };
        let once = |e: &str, s: &str| {
            assert_eq!(e.matches(s).count(), 1, "`{s}` once in: {e}");
        };
        let e = message("nodeTypes:\n- name: a\n  cores: x\n");
        assert!(
            e.starts_with(&format!("fleet file {file}: nodeTypes[0].cores: ")),
            "{e}"
        );
        once(&e, &file);
        once(&e, "nodeTypes[0].cores");
        assert!(!e.contains("field `.`"), "{e}");
        let e = message("latencyMs: {}\n");
        assert_eq!(e, format!("fleet file {file}: missing field `nodeTypes`"));
        // Semantic errors name the file too (once) and the field.
        let e = message(
            "nodeTypes:\n- {name: a, cores: 8, memoryGib: 32, idleWatts: 50, maxWatts: 40}\nclusters: []\nlatencyMs: {}\n",
        );
        once(&e, &file);
        assert!(
            e.contains("nodeTypes[0].maxWatts: 40 must be above idleWatts"),
            "{e}"
        );
    }
}
