//! Extender load fixtures: a demo service with a synthetic node cache of any size, and
//! kube-scheduler-shaped request bodies (the golden fixtures' pod) in both modes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{TimeZone, Utc};
use scheduler::config::Config;
use scheduler::fleet::NodeFact;
use scheduler::fleet::NodeSource;
use scheduler::fleet::PodRequests;
use scheduler::runtime::{self, Service};
use serde_json::{Value, json};

/// The golden names-mode request body (its pod is a Deployment replica with two
/// containers and an init container, annotated for carbon and FR users).
pub const NAMES_FIXTURE: &str = include_str!("../../scheduler/tests/fixtures/args-names.json");

const REGIONS: [&str; 3] = ["de", "fr", "gb"];
/// (instance type, cores, memory GiB) of the demo fleet's node types.
const TYPES: [(&str, f64, f64); 4] = [
    ("std-x86", 32.0, 128.0),
    ("old-x86", 24.0, 96.0),
    ("arm-eff", 64.0, 256.0),
    ("gpu-x86", 48.0, 384.0),
];

/// Name of synthetic node `i`.
pub fn node_name(i: usize) -> String {
    let (ty, ..) = TYPES[i % TYPES.len()];
    format!("{}-{ty}-{i}", REGIONS[i % REGIONS.len()])
}

/// `n` nodes over DE/FR/GB and the demo's four types, 30–80 % of CPU requested.
pub fn synthetic_facts(n: usize) -> Vec<NodeFact> {
    (0..n)
        .map(|i| {
            let (ty, cores, mem) = TYPES[i % TYPES.len()];
            let region = REGIONS[i % REGIONS.len()];
            let name = node_name(i);
            let used = 0.3 + 0.5 * ((i * 7919) % 101) as f64 / 100.0;
            NodeFact {
                labels: BTreeMap::from([
                    ("kubernetes.io/hostname".into(), name.clone()),
                    ("node.kubernetes.io/instance-type".into(), ty.into()),
                    ("topology.kubernetes.io/region".into(), region.into()),
                ]),
                name,
                allocatable: PodRequests {
                    cpu: cores,
                    memory: mem * f64::from(1u32 << 30),
                    gpu: 0.0,
                },
                allocated: PodRequests {
                    cpu: cores * used,
                    memory: mem * f64::from(1u32 << 30) * used,
                    gpu: 0.0,
                },
            }
        })
        .collect()
}

/// A fixed node cache.
#[derive(Debug, Clone)]
pub struct SyntheticNodes(pub Vec<NodeFact>);

impl NodeSource for SyntheticNodes {
    fn facts(&self) -> Option<Vec<NodeFact>> {
        Some(self.0.clone())
    }
}

/// The demo service (simulated telemetry, 2020 carbon curves, a fixed clock at
/// 2020-03-04 12:00 UTC) with `nodes` synthetic nodes in its cache; its view is rebuilt
/// hourly, so benches time requests only.
pub async fn service(config: Config, nodes: usize) -> Result<Service> {
    service_every(config, nodes, Duration::from_secs(3600)).await
}

/// [`service`] with its view rebuilt every `view_every` (`ecoplace serve` rebuilds it
/// every second: a load or soak test should too).
pub async fn service_every(config: Config, nodes: usize, view_every: Duration) -> Result<Service> {
    let mut parts = runtime::demo(config).context("demo parts")?;
    parts.nodes = Arc::new(SyntheticNodes(synthetic_facts(nodes)));
    parts.clock = Arc::new(|| {
        Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
            .single()
            .unwrap_or_default()
    });
    Service::start(parts, view_every).await
}

fn fixture() -> Result<Value> {
    serde_json::from_str(NAMES_FIXTURE).context("names fixture")
}

/// A names-mode body (`nodeCacheCapable: true`) with `k` of the cache's `n` names,
/// spread over the cache and in no particular order.
pub fn names_body(k: usize, n: usize) -> Result<Vec<u8>> {
    let mut args = fixture()?;
    let names: Vec<String> = (0..k)
        .map(|j| node_name((j * 7_919 + 13) % n.max(1)))
        .collect();
    args["NodeNames"] = json!(names);
    Ok(serde_json::to_vec(&args)?)
}

/// A full-`Nodes` body (`nodeCacheCapable: false`) with `k` Node objects as kube-scheduler
/// marshals them (status with capacity, allocatable, conditions, addresses, nodeInfo).
pub fn nodes_body(k: usize) -> Result<Vec<u8>> {
    nodes_body_with_images(k, 0)
}

/// `status.images` of a node: `n` images, each with a digest and a tag name and a size, as
/// the kubelet reports them (it reports up to `nodeStatusMaxImages`, 50 by default).
fn images(node: usize, n: usize) -> Value {
    (0..n)
        .map(|j| {
            let repo = format!("registry.example.com/team-{}/service-{j}", j % 7);
            let digest = format!("{:016x}", (node * 131 + j).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            json!({
                "names": [format!("{repo}@sha256:{}", digest.repeat(4)), format!("{repo}:v1.{j}.{}", node % 10)],
                "sizeBytes": 20_000_000 + 1_000_003 * j as u64
            })
        })
        .collect()
}

/// [`nodes_body`] with `images_per_node` entries in each node's `status.images` (the bulk of a real
/// Node object: 50 images make a node ~10 kB).
pub fn nodes_body_with_images(k: usize, images_per_node: usize) -> Result<Vec<u8>> {
    let mut args = fixture()?;
    let items: Vec<Value> = synthetic_facts(k)
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let cpu = format!("{}", f.allocatable.cpu);
            let mem = format!("{}Ki", (f.allocatable.memory / 1024.0) as u64);
            let mut node = json!({
                "metadata": {
                    "name": f.name,
                    "uid": format!("6a1c0000-0000-4000-8000-{:012}", f.name.len()),
                    "resourceVersion": "48213",
                    "creationTimestamp": "2026-11-01T08:00:00Z",
                    "labels": f.labels,
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0"}
                },
                "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
                "status": {
                    "capacity": {"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "102626232Ki"},
                    "allocatable": {"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "94580335255"},
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-28T09:59:00Z", "lastTransitionTime": "2026-11-01T08:01:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": f.name}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0-27-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.4", "operatingSystem": "linux", "architecture": "amd64"}
                }
            });
            if images_per_node > 0 {
                node["status"]["images"] = images(i, images_per_node);
            }
            node
        })
        .collect();
    args["NodeNames"] = Value::Null;
    args["Nodes"] = json!({"metadata": {"resourceVersion": "48213"}, "items": items});
    Ok(serde_json::to_vec(&args)?)
}
