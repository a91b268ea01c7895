//! Where node facts come from: a kube-rs reflector on Nodes and Pods (with its health), or
//! the embedded demo fleet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod as KubePod};
use kepler_client::SimulatedFleet;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use super::ViewSettings;
use super::metrics::WatchMetrics;
use super::requests::{PodRequests, pod_requests, quantities};
use super::view::NodeFact;
use super::watch_health::{ObserveLayer, WatchFailure, WatchHealth};

/// A source of node facts; `None` until it has synced.
pub trait NodeSource: Send + Sync {
    /// Current facts of every node.
    fn facts(&self) -> Option<Vec<NodeFact>>;

    /// The watches behind the facts that are failing now (none: the facts are current).
    fn watch_failures(&self) -> Vec<WatchFailure> {
        Vec::new()
    }
}

/// Node facts of the embedded simulated fleet (`ecoplace serve --demo`): its 24 nodes as one
/// cluster stretched over DE, FR and GB.
#[derive(Debug, Clone)]
pub struct DemoNodes {
    facts: Vec<NodeFact>,
}

impl DemoNodes {
    /// Facts from `fleet`: allocatable from node types, allocated from its pods' requests.
    pub fn new(fleet: &SimulatedFleet, settings: &ViewSettings) -> Self {
        let mut facts: Vec<NodeFact> = fleet
            .nodes
            .iter()
            .map(|n| {
                let ty = &fleet.node_types[n.node_type];
                let cluster = &fleet.clusters[n.cluster];
                NodeFact {
                    name: n.name.clone(),
                    labels: BTreeMap::from([
                        (settings.topology.region_label.clone(), cluster.name.clone()),
                        (settings.power.node_type_label.clone(), ty.name.clone()),
                        ("kubernetes.io/hostname".into(), n.name.clone()),
                    ]),
                    allocatable: PodRequests {
                        cpu: ty.cores,
                        memory: ty.memory_gib * f64::from(1u32 << 30),
                        gpu: 0.0,
                    },
                    allocated: PodRequests::default(),
                }
            })
            .collect();
        for p in &fleet.pods {
            if let Some(f) = facts.get_mut(p.node) {
                f.allocated.cpu += p.cpu_request;
                f.allocated.memory += p.memory_gib * f64::from(1u32 << 30);
            }
        }
        Self { facts }
    }
}

impl NodeSource for DemoNodes {
    fn facts(&self) -> Option<Vec<NodeFact>> {
        Some(self.facts.clone())
    }
}

/// Node facts from reflectors on Nodes and on Pods whose phase is not Succeeded/Failed.
#[derive(Clone)]
pub struct KubeNodes {
    nodes: Store<KubeNode>,
    pods: Store<KubePod>,
    synced: Arc<std::sync::atomic::AtomicBool>,
    health: [Arc<WatchHealth>; 2],
}

impl std::fmt::Debug for KubeNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodes").finish_non_exhaustive()
    }
}

impl KubeNodes {
    /// Starts the two watches (managedFields dropped) with a client for `config`, their
    /// health reported in `metrics` (`ecoplace_watch_up`, `ecoplace_watch_errors_total`).
    pub fn spawn(config: kube::Config, metrics: &WatchMetrics) -> Result<Self, kube::Error> {
        let node_health = WatchHealth::new("nodes", metrics);
        let pod_health = WatchHealth::new("pods", metrics);
        let layer = ObserveLayer::new(vec![
            (KubeNode::url_path(&(), None), Arc::clone(&node_health)),
            (KubePod::url_path(&(), None), Arc::clone(&pod_health)),
        ]);
        let client = kube::client::ClientBuilder::try_from(config)?
            .with_layer(&layer)
            .build();
        let (nodes, node_writer) = reflector::store();
        let (pods, pod_writer) = reflector::store();
        let h = Arc::clone(&node_health);
        let node_stream = watcher(
            Api::<KubeNode>::all(client.clone()),
            watcher::Config::default(),
        )
        .inspect(move |item| h.observe(item))
        .modify(|n| n.managed_fields_mut().clear())
        .reflect(node_writer)
        .applied_objects()
        .default_backoff();
        let pod_config =
            watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
        let h = Arc::clone(&pod_health);
        let pod_stream = watcher(Api::<KubePod>::all(client), pod_config)
            .inspect(move |item| h.observe(item))
            .modify(|p| p.managed_fields_mut().clear())
            .reflect(pod_writer)
            .applied_objects()
            .default_backoff();
        tokio::spawn(drain(node_stream, "nodes"));
        tokio::spawn(drain(pod_stream, "pods"));
        let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, p, flag) = (nodes.clone(), pods.clone(), Arc::clone(&synced));
        tokio::spawn(async move {
            if n.wait_until_ready().await.is_ok() && p.wait_until_ready().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!("node and pod watches synced");
            }
        });
        Ok(Self {
            nodes,
            pods,
            synced,
            health: [node_health, pod_health],
        })
    }

    /// The watched Nodes as cached (managedFields dropped).
    pub fn node_objects(&self) -> Vec<Arc<KubeNode>> {
        self.nodes.state()
    }

    /// The watched Pods (phase not Succeeded/Failed) as cached (managedFields dropped).
    pub fn pod_objects(&self) -> Vec<Arc<KubePod>> {
        self.pods.state()
    }
}

async fn drain<S, T>(stream: S, what: &'static str)
where
    S: futures::Stream<Item = Result<T, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            tracing::warn!(watch = what, "watch error (retrying with backoff): {e}");
        }
    }
}

impl NodeSource for KubeNodes {
    fn watch_failures(&self) -> Vec<WatchFailure> {
        let now = std::time::Instant::now();
        self.health.iter().filter_map(|h| h.failure(now)).collect()
    }

    fn facts(&self) -> Option<Vec<NodeFact>> {
        if !self.synced.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        Some(node_facts(&self.nodes.state(), &self.pods.state()))
    }
}

/// Facts of Node objects, with the requests of the pods bound to them (`pods` should hold
/// only pods whose phase is not Succeeded/Failed).
pub fn node_facts<N, P>(nodes: &[N], pods: &[P]) -> Vec<NodeFact>
where
    N: std::ops::Deref<Target = KubeNode>,
    P: std::ops::Deref<Target = KubePod>,
{
    let mut allocated: HashMap<String, PodRequests> = HashMap::new();
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let r = pod_requests(pod);
        let e = allocated.entry(node).or_default();
        e.cpu += r.cpu;
        e.memory += r.memory;
        e.gpu += r.gpu;
    }
    nodes
        .iter()
        .map(|n| {
            let name = n.name_any();
            let alloc = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .map(|a| quantities(a.iter().map(|(k, v)| (k.as_str(), v.0.as_str()))))
                .unwrap_or_default();
            NodeFact {
                allocated: allocated.get(&name).copied().unwrap_or_default(),
                labels: n.labels().clone(),
                name,
                allocatable: alloc,
            }
        })
        .collect()
}
