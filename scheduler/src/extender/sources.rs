//! Where the extender's node facts come from (a kube-rs reflector, or the demo fleet), and
//! the background task that rebuilds the fleet view from them, telemetry and carbon.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod as KubePod};
use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::{Refresher, SimulatedFleet};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use optimizer::CarbonOutlook;

use super::Extender;
use super::fleet::{FleetView, NodeFact, ViewInputs, carbon_zone};
use super::quantity;
use super::watch_health::{ObserveLayer, WatchFailure, WatchHealth};
use super::wire::PodRequests;
use crate::config::Config;
use crate::server::metrics::Metrics;

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
    pub fn new(fleet: &SimulatedFleet, config: &Config) -> Self {
        let mut facts: Vec<NodeFact> = fleet
            .nodes
            .iter()
            .map(|n| {
                let ty = &fleet.node_types[n.node_type];
                let cluster = &fleet.clusters[n.cluster];
                NodeFact {
                    name: n.name.clone(),
                    labels: BTreeMap::from([
                        (config.topology.region_label.clone(), cluster.name.clone()),
                        (config.power.node_type_label.clone(), ty.name.clone()),
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
    pub fn spawn(config: kube::Config, metrics: &Metrics) -> Result<Self, kube::Error> {
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

/// Sums cpu, memory and GPU quantities; unparsable ones are skipped with a warning.
fn quantities<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> PodRequests {
    let mut r = PodRequests::default();
    for (k, v) in items {
        let slot = match k {
            "cpu" => &mut r.cpu,
            "memory" => &mut r.memory,
            "nvidia.com/gpu" | "amd.com/gpu" => &mut r.gpu,
            _ => continue,
        };
        match quantity::parse(v, k) {
            Ok(q) => *slot += q,
            Err(e) => tracing::warn!("{e}"),
        }
    }
    r
}

/// Effective requests of a pod object (containers, largest init container, overhead).
pub fn pod_requests(pod: &KubePod) -> PodRequests {
    let Some(spec) = pod.spec.as_ref() else {
        return PodRequests::default();
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|q| quantities(q.iter().map(|(k, v)| (k.as_str(), v.0.as_str()))))
            .unwrap_or_default()
    };
    let mut sum = PodRequests::default();
    for c in &spec.containers {
        let r = of(c);
        sum.cpu += r.cpu;
        sum.memory += r.memory;
        sum.gpu += r.gpu;
    }
    for c in spec.init_containers.iter().flatten() {
        let r = of(c);
        sum.cpu = sum.cpu.max(r.cpu);
        sum.memory = sum.memory.max(r.memory);
        sum.gpu = sum.gpu.max(r.gpu);
    }
    if let Some(o) = &spec.overhead {
        let r = quantities(o.iter().map(|(k, v)| (k.as_str(), v.0.as_str())));
        sum.cpu += r.cpu;
        sum.memory += r.memory;
        sum.gpu += r.gpu;
    }
    sum
}

/// What the view updater reads.
pub struct Inputs {
    /// Node facts.
    pub nodes: Arc<dyn NodeSource>,
    /// Telemetry.
    pub refresher: Arc<Refresher>,
    /// Carbon intensity.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// Configuration.
    pub config: Arc<Config>,
    /// The clock (the demo runs in 2020, inside its carbon data).
    pub clock: kepler_client::refresher::Clock,
    /// Zones whose missing intensity was logged (logged again only once it came back).
    pub carbon_logged: Mutex<BTreeSet<String>>,
}

/// Rebuilds and publishes the view every `every`, forever.
pub async fn run_updater(extender: Arc<Extender>, inputs: Inputs, every: Duration) {
    loop {
        extender.publish(build_view(&inputs).await);
        tokio::time::sleep(every).await;
    }
}

/// Logs a zone's intensity going missing (warning) and coming back (info) once each, not
/// on every view: `logged` holds the zones missing at the last view.
fn log_carbon_changes(logged: &Mutex<BTreeSet<String>>, missing: &BTreeMap<String, String>) {
    let Ok(mut logged) = logged.lock() else {
        return;
    };
    for (zone, e) in missing {
        if !logged.contains(zone) {
            tracing::warn!(zone = %zone, "no carbon intensity: {e}; nodes there get the mean of the known zones (all zones missing: decisions fail open, carbon_missing)");
        }
    }
    for zone in logged.iter().filter(|z| !missing.contains_key(*z)) {
        tracing::info!(zone = %zone, "carbon intensity available again");
    }
    *logged = missing.keys().cloned().collect();
}

/// One view from the current inputs.
pub async fn build_view(inputs: &Inputs) -> FleetView {
    let now = (inputs.clock)();
    let facts = inputs.nodes.facts();
    let view_inputs = view_inputs(
        facts.as_deref().unwrap_or_default(),
        inputs.refresher.latest().snapshot.clone(),
        inputs.carbon.as_ref(),
        &inputs.config,
        now,
    )
    .await;
    log_carbon_changes(&inputs.carbon_logged, &view_inputs.carbon_missing);
    let mut view = FleetView::build(facts.as_deref(), view_inputs);
    // Checked positive and finite at load; a grace too long for a Duration never expires.
    let grace = Duration::try_from_secs_f64(inputs.config.kubernetes.watch_stale_after_seconds)
        .unwrap_or(Duration::MAX);
    view.stale_watches = inputs
        .nodes
        .watch_failures()
        .into_iter()
        .filter(|f| f.failing_for > grace)
        .collect();
    view
}

/// The view's other inputs at `now`: the snapshot given, and the carbon outlook of every
/// zone the nodes in `facts` are in (zones without intensity are left out, and listed with
/// the source's error).
pub async fn view_inputs(
    facts: &[NodeFact],
    snapshot: Option<Arc<kepler_client::FleetSnapshot>>,
    source: &dyn CarbonIntensitySource,
    config: &Arc<Config>,
    now: DateTime<Utc>,
) -> ViewInputs {
    let zones: BTreeSet<String> = facts
        .iter()
        .filter_map(|f| carbon_zone(&f.labels, config))
        .collect();
    let horizon = chrono::Duration::seconds(config.policy.expected_duration_seconds as i64);
    let mut carbon = HashMap::new();
    let mut carbon_missing = BTreeMap::new();
    for zone in zones {
        match outlook(source, &zone, now, now + horizon).await {
            Ok(o) => {
                carbon.insert(zone, o);
            }
            Err(e) => {
                carbon_missing.insert(zone, e.to_string());
            }
        }
    }
    ViewInputs {
        snapshot,
        carbon,
        carbon_missing,
        config: Arc::clone(config),
        built_at: now,
    }
}

/// A zone's carbon outlook from `from`: the intensity then, plus the source's forecast up
/// to `to` when it has one (none: the outlook is flat). Shared by the extender's view and
/// the OCM score publisher.
pub async fn outlook(
    source: &dyn CarbonIntensitySource,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<CarbonOutlook, kepler_client::carbon::CarbonError> {
    let now = source.intensity_at(zone, from).await?;
    let forecast = source
        .forecast(zone, from, to)
        .await
        .map(|points| points.iter().map(|p| (p.start, p.g_per_kwh)).collect())
        .unwrap_or_default();
    Ok(CarbonOutlook {
        now_g_per_kwh: now,
        forecast,
    })
}
