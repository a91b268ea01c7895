//! The time-stepped simulation of one policy: autoscaled services and batch jobs arrive
//! and leave, pods are placed through the policy on ready nodes (a sleeping node is woken
//! and boots before it takes them), nodes are powered down by the policy's lifecycle, and
//! every step's power, carbon and latency are accounted. Decisions read a carbon forecast;
//! accounting reads the truth.

mod account;
mod autoscaler;
mod milp;

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use optimizer::headroom::Reserve;
use optimizer::power::CurvePowerModel;
use optimizer::shift::{DeferrableJob, ShiftCandidate, SlotBudget, choose_start};
use optimizer::{CarbonOutlook, Resources, SolveOptions, Target, TargetKind, Workload};

use super::fleet::Fleet;
use super::forecast::Forecast;
use super::policy::{Lifecycle, Policy};
use super::results::Counters;
use super::trace::{Kind, TraceWorkload, secs, service_demand, service_replicas};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Share of a cluster's cores that jobs held for one clean hour may book (shifting
/// policies): the cleanest hour does not become a thundering herd.
const SHIFT_BUDGET_SHARE: f64 = 0.25;

/// How the simulation runs (defaults: the documented default scenario).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// First instant simulated.
    pub start: DateTime<Utc>,
    /// Number of steps.
    pub steps: usize,
    /// Step length, seconds.
    pub step_s: i64,
    /// MILP batch rounds every this many steps (MILP policies).
    pub batch_every_steps: usize,
    /// MILP rebalancing every this many steps (MILP policies).
    pub rebalance_every_steps: usize,
    /// A node empty for this many steps is powered down (`EmptyNodes` lifecycle).
    pub power_down_after_steps: u32,
    /// cluster-autoscaler's scale-down settings (`Autoscaler` lifecycle).
    pub autoscaler: AutoscalerSettings,
    /// Seconds from waking a node until it takes pods (it draws idle power meanwhile).
    pub boot_s: f64,
    /// Seconds a moved replica needs to start serving again where it lands.
    pub restart_s: f64,
    /// Energy of one move (pod start, image pull), joules, charged at the landing node's
    /// grid intensity.
    pub migration_j: f64,
    /// ecoplace's headroom (policies that keep it): `None` turns it off.
    pub headroom: Option<HeadroomSettings>,
    /// The carbon forecast decisions read.
    pub forecast: Forecast,
    /// Seed of the forecast's errors (`noisy`).
    pub forecast_seed: u64,
    /// Nodes kept awake per cluster, however empty.
    pub min_awake_per_cluster: usize,
    /// Expected duration of a service pod, seconds (the extender's default, 1 h).
    pub service_expected_s: f64,
    /// Hours of carbon forecast given to the optimizer.
    pub forecast_hours: i64,
    /// MILP limits.
    pub milp: SolveOptions,
    /// Keep per-step node figures (for tests and charts).
    pub record_steps: bool,
}

impl Settings {
    /// Defaults for a run of `days` from `start`.
    pub fn new(start: DateTime<Utc>, days: f64) -> Self {
        let step_s = 300;
        Self {
            start,
            steps: ((days * 86_400.0) / step_s as f64).round().max(1.0) as usize,
            step_s,
            batch_every_steps: 3,
            rebalance_every_steps: 12,
            power_down_after_steps: 3,
            autoscaler: AutoscalerSettings::default(),
            boot_s: 180.0,
            restart_s: 30.0,
            migration_j: 1000.0,
            headroom: Some(HeadroomSettings::default()),
            forecast: Forecast::DEFAULT,
            forecast_seed: 0,
            min_awake_per_cluster: 1,
            service_expected_s: 3600.0,
            forecast_hours: 48,
            milp: SolveOptions {
                time_limit_s: 10.0,
                candidates: Some(8),
                // Convex pricing (`convex_power`) made the default week's `balanced` 14 s →
                // 60–70 s (HiGHS branches on the fractional LP a convex objective gives)
                // for −1.2 % carbon and −1.6 % energy: off, as everywhere by default
                // (docs/results.md, issue 19).
                ..SolveOptions::default()
            },
            record_steps: false,
        }
    }

    /// End of the simulated period.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::seconds(self.step_s * self.steps as i64)
    }

    /// Whole steps `seconds` spans (0 for none).
    pub fn steps_of(&self, seconds: f64) -> usize {
        if seconds <= 0.0 {
            0
        } else {
            (seconds / self.step_s as f64).ceil() as usize
        }
    }
}

/// How much ready CPU ecoplace keeps per cluster (`optimizer::headroom`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadroomSettings {
    /// How far ahead the services' replica forecast looks, seconds.
    pub horizon_s: f64,
    /// Spare fraction of the services' requests kept beyond the forecast growth.
    pub floor: f64,
}

impl Default for HeadroomSettings {
    fn default() -> Self {
        Self {
            horizon_s: 1800.0,
            floor: 0.1,
        }
    }
}

/// cluster-autoscaler's scale-down (its flags' defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerSettings {
    /// `--scale-down-utilization-threshold`: a node whose requested CPU and memory are both
    /// under this fraction of allocatable is unneeded.
    pub utilization_threshold: f64,
    /// `--scale-down-unneeded-time`, seconds.
    pub unneeded_s: f64,
    /// `--scale-down-delay-after-add`, seconds: no scale-down this long after a scale-up.
    pub delay_after_add_s: f64,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        Self {
            utilization_threshold: 0.5,
            unneeded_s: 600.0,
            delay_after_add_s: 600.0,
        }
    }
}

/// One step's node figures (kept when [`Settings::record_steps`] is set).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Start of the step.
    pub at: DateTime<Utc>,
    /// Platform power of each node over the step, watts (0 asleep).
    pub node_watts: Vec<f64>,
    /// CPU requested on each node, cores.
    pub node_cpu_requested: Vec<f64>,
    /// Memory requested on each node, GiB.
    pub node_memory_requested_gib: Vec<f64>,
    /// Carbon intensity of each cluster over the step, gCO2e/kWh.
    pub cluster_intensity: Vec<f64>,
}

/// A pod bound to a node (serving from `ready_step`).
#[derive(Debug, Clone)]
struct Pod {
    workload: usize,
    node: usize,
    requests: Resources,
    /// First step it serves (its node booted, its restart done).
    ready_step: usize,
    /// Started by a move (a restart), not by a scale-up or an arrival.
    moved: bool,
}

#[derive(Debug, Clone, Default)]
struct NodeRt {
    /// Drawing power (booting or ready).
    on: bool,
    /// First step it takes pods (after its boot).
    ready_step: usize,
    empty_steps: u32,
    /// Steps in a row the autoscaler found it unneeded.
    unneeded_steps: u32,
    requested: Resources,
    pods: usize,
}

impl NodeRt {
    fn ready(&self, k: usize) -> bool {
        self.on && self.ready_step <= k
    }
}

#[derive(Debug, Clone, Default)]
struct ServiceRt {
    active: bool,
    done: bool,
    running: Vec<u64>,
    pending: u32,
}

#[derive(Debug, Clone, Default)]
struct JobRt {
    arrived: bool,
    pending: u32,
    left: u32,
    settled: bool,
}

/// One policy's simulation state.
pub struct Sim<'a> {
    fleet: &'a Fleet,
    trace: &'a [TraceWorkload],
    settings: &'a Settings,
    policy: Policy,
    power: &'a CurvePowerModel,
    nodes: Vec<NodeRt>,
    pods: BTreeMap<u64, Pod>,
    next_pod: u64,
    services: Vec<ServiceRt>,
    jobs: Vec<JobRt>,
    queue: Vec<usize>,
    /// Batch jobs held for a cleaner window (shifting policies): release time, job.
    held: Vec<(DateTime<Utc>, usize)>,
    /// Cores per cluster and hour the held jobs booked (shifting policies).
    shift_budget: Vec<SlotBudget>,
    ends: BTreeMap<usize, Vec<u64>>,
    outlooks: Vec<CarbonOutlook>,
    /// The current step.
    k: usize,
    /// Last step a node was woken (the autoscaler's delay after add).
    last_wake: Option<usize>,
    /// ecoplace's headroom per cluster this step (empty without headroom).
    reserve: Vec<Reserve>,
    /// Service CPU requested by replicas started (not moved) per cluster in each of the
    /// last day's steps, newest last: the bursts the headroom is kept for.
    bursts: std::collections::VecDeque<Vec<f64>>,
    /// What was measured.
    pub counters: Counters,
    /// Per-step node figures, when recorded.
    pub steps: Vec<StepRecord>,
}

impl<'a> Sim<'a> {
    /// A fresh run: every node awake and empty, nothing submitted yet.
    pub fn new(
        fleet: &'a Fleet,
        trace: &'a [TraceWorkload],
        settings: &'a Settings,
        policy: Policy,
        power: &'a CurvePowerModel,
    ) -> Self {
        let nodes = vec![
            NodeRt {
                on: true,
                ..NodeRt::default()
            };
            fleet.nodes.len()
        ];
        Self {
            fleet,
            trace,
            settings,
            policy,
            power,
            nodes,
            pods: BTreeMap::new(),
            next_pod: 0,
            services: vec![ServiceRt::default(); trace.len()],
            jobs: vec![JobRt::default(); trace.len()],
            queue: Vec::new(),
            held: Vec::new(),
            shift_budget: fleet
                .clusters
                .iter()
                .enumerate()
                .map(|(c, _)| {
                    let cores: f64 = fleet
                        .nodes
                        .iter()
                        .filter(|n| n.cluster == c)
                        .map(|n| fleet.node_types[n.node_type].cores)
                        .sum();
                    SlotBudget::new(Duration::hours(1), SHIFT_BUDGET_SHARE * cores)
                })
                .collect(),
            ends: BTreeMap::new(),
            outlooks: Vec::new(),
            k: 0,
            last_wake: None,
            reserve: Vec::new(),
            bursts: std::collections::VecDeque::new(),
            counters: Counters {
                energy_j_by_cluster: vec![0.0; fleet.clusters.len()],
                ..Counters::default()
            },
            steps: Vec::new(),
        }
    }

    /// Runs every step.
    pub fn run(mut self) -> Result<Self> {
        for k in 0..self.settings.steps {
            self.step(k)?;
        }
        self.settle_open_jobs();
        Ok(self)
    }

    fn at(&self, k: usize) -> DateTime<Utc> {
        self.settings.start + Duration::seconds(self.settings.step_s * k as i64)
    }

    fn step(&mut self, k: usize) -> Result<()> {
        let t = self.at(k);
        self.k = k;
        let day = self.settings.steps_of(86_400.0).max(1);
        while self.bursts.len() >= day {
            self.bursts.pop_front();
        }
        self.bursts.push_back(vec![0.0; self.fleet.clusters.len()]);
        self.outlooks = self.carbon_outlooks(t)?;
        self.finish_batch(k, t);
        self.scale_services(t);
        self.reserve = self.reserves(t);
        self.submit_batch(t);
        self.place_services(t)?;
        self.place_batch(k, t)?;
        if self.policy.uses_milp() && k > 0 && k.is_multiple_of(self.settings.rebalance_every_steps)
        {
            self.rebalance(t)?;
        }
        match self.policy.lifecycle() {
            Lifecycle::EmptyNodes => self.power_down(),
            Lifecycle::Autoscaler => self.autoscale_down(t)?,
        }
        self.account(t)
    }

    /// Carbon outlook of each cluster at `t` as the decisions' forecast gives it.
    fn carbon_outlooks(&self, t: DateTime<Utc>) -> Result<Vec<CarbonOutlook>> {
        carbon_outlooks(self.fleet, self.settings, t)
    }

    fn finish_batch(&mut self, k: usize, t: DateTime<Utc>) {
        let Some(ended) = self.ends.remove(&k) else {
            return;
        };
        for id in ended {
            let Some(pod) = self.stop_pod(id) else {
                continue;
            };
            let w = pod.workload;
            let job = &mut self.jobs[w];
            job.left = job.left.saturating_sub(1);
            if job.left == 0 && !job.settled {
                job.settled = true;
                if self.trace[w].deadline.is_some_and(|d| t > d) {
                    self.counters.batch_late += 1;
                } else {
                    self.counters.batch_on_time += 1;
                }
            }
        }
    }

    fn scale_services(&mut self, t: DateTime<Utc>) {
        for (i, w) in self.trace.iter().enumerate() {
            if w.kind != Kind::Service || self.services[i].done || w.arrive > t {
                continue;
            }
            if w.depart.is_some_and(|d| d <= t) {
                let running = std::mem::take(&mut self.services[i].running);
                for id in running {
                    self.stop_pod(id);
                }
                self.services[i] = ServiceRt {
                    done: true,
                    ..ServiceRt::default()
                };
                continue;
            }
            self.services[i].active = true;
            let want = service_replicas(w, t);
            let s = &mut self.services[i];
            let have = s.running.len() as u32 + s.pending;
            if want >= have {
                s.pending += want - have;
                continue;
            }
            // Scale down: pending replicas first, then the newest running ones.
            let mut surplus = have - want;
            let from_pending = surplus.min(s.pending);
            s.pending -= from_pending;
            surplus -= from_pending;
            let cut = s.running.len() - surplus as usize;
            let removed: Vec<u64> = s.running.drain(cut..).collect();
            for id in removed {
                self.stop_pod(id);
            }
        }
    }

    fn submit_batch(&mut self, t: DateTime<Utc>) {
        // Held jobs whose window has come join the queue.
        let (due, still): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(r, _)| *r <= t);
        self.held = still;
        self.queue.extend(due.into_iter().map(|(_, j)| j));
        for i in 0..self.trace.len() {
            let w = &self.trace[i];
            if w.kind == Kind::Batch && !self.jobs[i].arrived && w.arrive <= t {
                self.jobs[i] = JobRt {
                    arrived: true,
                    pending: w.max_replicas,
                    left: w.max_replicas,
                    settled: false,
                };
                self.counters.batch_jobs += 1;
                match self.shift_start(i, t) {
                    Some(release) => self.held.push((release, i)),
                    None => self.queue.push(i),
                }
            }
        }
    }

    /// For a shifting policy, when batch job `j` arriving at `t` should be released: the
    /// cleanest forecast window before its deadline (less a margin for a node's boot and
    /// the next batch round), booked in the per-cluster budget; `None`: start now.
    fn shift_start(&mut self, j: usize, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.policy.shifts() {
            return None;
        }
        let w = &self.trace[j];
        let deadline = w.deadline?;
        let margin = self.settings.boot_s
            + (self.settings.batch_every_steps as f64 + 2.0) * self.settings.step_s as f64;
        let job = DeferrableJob {
            name: w.name.clone(),
            duration: secs(w.duration_s.unwrap_or(3600.0)),
            cores: w.cpu * f64::from(w.max_replicas),
            earliest: t,
            deadline: deadline - secs(margin),
        };
        let until = t + Duration::hours(self.settings.forecast_hours);
        let candidates: Vec<ShiftCandidate> = self
            .fleet
            .clusters
            .iter()
            .enumerate()
            .map(|(c, cl)| ShiftCandidate {
                target: cl.name.clone(),
                carbon: self.outlooks[c].clone(),
                forecast_until: until,
                watts: job.cores * w.usage * self.watts_per_core(c),
            })
            .collect();
        // One budget per cluster: price each cluster against its own.
        let mut best: Option<(usize, optimizer::shift::ShiftDecision)> = None;
        for (c, cand) in candidates.iter().enumerate() {
            let d = choose_start(&job, std::slice::from_ref(cand), &self.shift_budget[c]);
            if best
                .as_ref()
                .is_none_or(|(_, b)| d.chosen_g < b.chosen_g - 1e-9)
            {
                best = Some((c, d));
            }
        }
        let (c, d) = best?;
        if d.start <= t || !d.within_budget {
            return None;
        }
        self.shift_budget[c].reserve(&job, &d);
        self.counters.batch_held += 1;
        self.counters.batch_held_s += (d.start - t).as_seconds_f64();
        self.counters.batch_shift_forecast_saved_g += d.saved_g();
        Some(d.start)
    }

    /// Mean extra watts per busy core on cluster `c`'s nodes (idle to full load).
    fn watts_per_core(&self, c: usize) -> f64 {
        let (sum, n) = self
            .fleet
            .nodes
            .iter()
            .filter(|n| n.cluster == c)
            .map(|n| {
                let t = &self.fleet.node_types[n.node_type];
                (t.curve.watts(1.0) - t.curve.watts(0.0)) / t.cores.max(1.0)
            })
            .fold((0.0, 0usize), |(s, k), w| (s + w, k + 1));
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    /// The optimizer workload for one pod of trace workload `w`.
    fn workload(&self, w: usize) -> Workload {
        workload_of(&self.trace[w], self.settings)
    }

    /// CPU cores pod `pod` uses at `t` (none before it serves).
    fn pod_usage(&self, pod: &Pod, t: DateTime<Utc>) -> f64 {
        if pod.ready_step > self.k {
            return 0.0;
        }
        let w = &self.trace[pod.workload];
        match w.kind {
            Kind::Batch => pod.requests.cpu * w.usage,
            Kind::Service => {
                let want = f64::from(service_replicas(w, t).max(1));
                pod.requests.cpu * w.usage * (service_demand(w, t) / want).min(1.0)
            }
        }
    }

    /// Cores batch jobs use on each node at `t`.
    fn batch_cores(&self, t: DateTime<Utc>) -> Vec<f64> {
        let mut used = vec![0.0; self.nodes.len()];
        for p in self.pods.values() {
            if self.trace[p.workload].kind == Kind::Batch {
                used[p.node] += self.pod_usage(p, t);
            }
        }
        used
    }

    fn used_cores(&self, t: DateTime<Utc>) -> Vec<f64> {
        let mut used = vec![0.0; self.nodes.len()];
        for p in self.pods.values() {
            used[p.node] += self.pod_usage(p, t);
        }
        used
    }

    /// One optimizer target per node, as the extender would see it at `t`.
    fn targets(&self, t: DateTime<Utc>) -> Vec<Target> {
        let used = self.used_cores(t);
        (0..self.nodes.len())
            .map(|n| {
                let rt = &self.nodes[n];
                let carbon = self.outlooks[self.fleet.nodes[n].cluster].clone();
                node_target(self.fleet, n, rt.requested, used[n], rt.on, carbon)
            })
            .collect()
    }

    /// Binds a pod of `w` to `node` (waking it if asleep); `moved` for a move's restart.
    fn start_pod(&mut self, w: usize, node: usize, t: DateTime<Utc>, moved: bool) -> u64 {
        let tw = &self.trace[w];
        let requests = Resources::new(tw.cpu, tw.memory_gib * GIB, 0.0);
        let id = self.next_pod;
        self.next_pod += 1;
        let k = self.k;
        let boot = self.settings.steps_of(self.settings.boot_s);
        let rt = &mut self.nodes[node];
        if !rt.on {
            rt.on = true;
            rt.ready_step = k + boot;
            rt.unneeded_steps = 0;
            self.counters.wakes += 1;
            self.last_wake = Some(k);
        }
        let mut ready_step = rt.ready_step.max(k);
        // The first step's replicas ran before the period: starting them is no burst.
        if tw.kind == Kind::Service && !moved && k > 0 {
            let c = self.fleet.nodes[node].cluster;
            if let Some(b) = self.bursts.back_mut() {
                b[c] += tw.cpu;
            }
        }
        if moved {
            ready_step = ready_step.max(k + self.settings.steps_of(self.settings.restart_s));
            // Charged at the true intensity now (every forecast knows the present).
            let c = self.fleet.nodes[node].cluster;
            let g = self.outlooks.get(c).map_or(0.0, |o| o.now_g_per_kwh);
            let j = self.settings.migration_j;
            self.counters.migrations += 1;
            self.counters.migration_j += j;
            let batch_share = if tw.kind == Kind::Batch { 1.0 } else { 0.0 };
            self.book(t, c, j, g, batch_share);
            self.counters.migration_carbon_g += j / kepler_client::accounting::JOULES_PER_KWH * g;
        }
        let rt = &mut self.nodes[node];
        rt.requested.cpu += requests.cpu;
        rt.requested.memory += requests.memory;
        rt.pods += 1;
        rt.empty_steps = 0;
        self.pods.insert(
            id,
            Pod {
                workload: w,
                node,
                requests,
                ready_step,
                moved,
            },
        );
        self.counters.pods_started += 1;
        if tw.kind == Kind::Service
            && ready_step > k
            && !moved
            && tracing::enabled!(tracing::Level::DEBUG)
        {
            let c = self.fleet.nodes[node].cluster;
            let reserve = self.reserve.get(c).copied().unwrap_or_default();
            let ready_free: f64 = (0..self.nodes.len())
                .filter(|&n| self.fleet.nodes[n].cluster == c && self.nodes[n].ready(k))
                .map(|n| (self.fleet.node_type(n).cores - self.nodes[n].requested.cpu).max(0.0))
                .sum();
            tracing::debug!(
                step = k,
                at = %t,
                service = %tw.name,
                cpu = tw.cpu,
                cluster = %self.fleet.clusters[c].name,
                reserve_cores = reserve.cores,
                reserve_block = reserve.block,
                ready_free_cores = ready_free,
                "a service replica waits for its node's boot (an SLO violation per step)"
            );
        }
        if tw.kind == Kind::Batch {
            let run = secs(tw.duration_s.unwrap_or(0.0)).num_seconds();
            let steps = (run + self.settings.step_s - 1) / self.settings.step_s;
            debug_assert_eq!(
                k,
                ((t - self.settings.start).num_seconds() / self.settings.step_s) as usize
            );
            self.ends
                .entry(ready_step + steps.max(1) as usize)
                .or_default()
                .push(id);
        }
        id
    }

    fn stop_pod(&mut self, id: u64) -> Option<Pod> {
        let pod = self.pods.remove(&id)?;
        let rt = &mut self.nodes[pod.node];
        rt.requested.cpu = (rt.requested.cpu - pod.requests.cpu).max(0.0);
        rt.requested.memory = (rt.requested.memory - pod.requests.memory).max(0.0);
        rt.pods -= 1;
        if rt.pods == 0 {
            rt.requested = Resources::default();
        }
        Some(pod)
    }

    /// Places one pod of `w` through the policy's per-pod path, as kube-scheduler and
    /// cluster-autoscaler would: on a ready node when one may take it, else on a node that
    /// is booting or asleep (woken: the pod waits for its boot). Updates `targets`.
    fn place_pod(
        &mut self,
        w: usize,
        targets: &mut [Target],
        t: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let Some(n) = self.choose_node(w, targets, t, None)? else {
            return Ok(None);
        };
        let id = self.start_pod(w, n, t, false);
        self.refresh_target(&mut targets[n], n, w);
        Ok(Some(id))
    }

    /// The node the policy picks for one pod of `w`: ready nodes first, then the others;
    /// never `except`.
    fn choose_node(
        &self,
        w: usize,
        targets: &[Target],
        t: DateTime<Utc>,
        except: Option<usize>,
    ) -> Result<Option<usize>> {
        let workload = self.workload(w);
        // Free CPU per cluster on awake nodes that counts towards its reserve, as the
        // targets have it now.
        let no_reserve = Reserve::default();
        let reserve_of = |c: usize| self.reserve.get(c).unwrap_or(&no_reserve);
        let node_free = |n: usize| (targets[n].capacity.cpu - targets[n].allocated.cpu).max(0.0);
        let mut usable = vec![0.0; self.fleet.clusters.len()];
        if self.policy.keeps_headroom() {
            for n in 0..targets.len() {
                if self.nodes[n].on {
                    let c = self.fleet.nodes[n].cluster;
                    usable[c] += reserve_of(c).usable_on(node_free(n));
                }
            }
        }
        let tw = &self.trace[w];
        // The clusters within the pod's latency SLO (all for batch).
        let within: Vec<bool> = self
            .fleet
            .clusters
            .iter()
            .enumerate()
            .map(|(c, _)| match (&tw.region, tw.slo_ms) {
                (Some(region), Some(slo)) => self
                    .fleet
                    .cluster_latency_ms(region, c)
                    .is_none_or(|ms| ms <= slo),
                _ => true,
            })
            .collect();
        let only_here = |c: usize| within.iter().enumerate().all(|(o, &ok)| o == c || !ok);
        for ready in [true, false] {
            let idx: Vec<usize> = (0..targets.len())
                .filter(|&n| Some(n) != except && self.nodes[n].ready(self.k) == ready)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let subset: Vec<&Target> = idx.iter().map(|&n| &targets[n]).collect();
            // A pod keeps a cluster's headroom if it leaves the reserve free there (in
            // blocks a replica fits in), or if it may run nowhere else (the reserve is for
            // such pods).
            let keeps = |i: usize| {
                let n = idx[i];
                let c = self.fleet.nodes[n].cluster;
                let r = reserve_of(c);
                let here = if self.nodes[n].on {
                    r.usable_on(node_free(n)) - r.usable_on(node_free(n) - tw.cpu)
                } else {
                    0.0
                };
                r.kept_by(usable[c] - here) || only_here(c)
            };
            if let Some(i) = self
                .policy
                .place_one_keeping(&workload, &subset, t, self.power, keeps)?
            {
                return Ok(Some(idx[i]));
            }
        }
        Ok(None)
    }

    /// Updates a target after a pod of trace workload `w` started on node `n`.
    fn refresh_target(&self, target: &mut Target, n: usize, w: usize) {
        let ty = self.fleet.node_type(n);
        let added = self.trace[w].usage * self.trace[w].cpu;
        target.allocated = self.nodes[n].requested;
        target.powered_on = self.nodes[n].on;
        target.utilisation = (target.utilisation + added / ty.cores).min(1.0);
    }

    fn place_services(&mut self, t: DateTime<Utc>) -> Result<()> {
        let waiting: Vec<usize> = (0..self.trace.len())
            .filter(|&i| self.services[i].pending > 0)
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let mut targets = self.targets(t);
        for w in waiting {
            while self.services[w].pending > 0 {
                let Some(id) = self.place_pod(w, &mut targets, t)? else {
                    break;
                };
                self.services[w].pending -= 1;
                self.services[w].running.push(id);
            }
        }
        Ok(())
    }

    fn place_batch(&mut self, k: usize, t: DateTime<Utc>) -> Result<()> {
        self.queue.retain(|&j| self.jobs[j].pending > 0);
        if self.queue.is_empty() {
            return Ok(());
        }
        let round = self.settings.batch_every_steps.max(1);
        let mut targets = self.targets(t);
        if self.policy.uses_milp() {
            if k.is_multiple_of(round) {
                self.batch_round(&mut targets, t)?;
            }
            // Between rounds only jobs that cannot wait for the next round start now.
            let next = t + Duration::seconds(self.settings.step_s * round as i64);
            let urgent: Vec<usize> = self
                .queue
                .iter()
                .copied()
                .filter(|&j| {
                    let w = &self.trace[j];
                    let latest = w.deadline.map(|d| d - secs(w.duration_s.unwrap_or(0.0)));
                    latest.is_some_and(|l| l <= next)
                })
                .collect();
            self.place_jobs_per_pod(&urgent, &mut targets, t)?;
        } else {
            let all = self.queue.clone();
            self.place_jobs_per_pod(&all, &mut targets, t)?;
        }
        self.queue.retain(|&j| self.jobs[j].pending > 0);
        Ok(())
    }

    fn place_jobs_per_pod(
        &mut self,
        jobs: &[usize],
        targets: &mut [Target],
        t: DateTime<Utc>,
    ) -> Result<()> {
        for &j in jobs {
            while self.jobs[j].pending > 0 {
                if self.place_pod(j, targets, t)?.is_none() {
                    break;
                }
                self.jobs[j].pending -= 1;
            }
        }
        Ok(())
    }
}

/// The optimizer workload of one pod of a trace row (replicas 1; SLO from its region).
pub fn workload_of(tw: &TraceWorkload, settings: &Settings) -> Workload {
    let mut out = Workload {
        name: tw.name.clone(),
        requests: Resources::new(tw.cpu, tw.memory_gib * GIB, 0.0),
        // What a deployment knows from the pod's history: its use at the autoscaling
        // target (services) or while running (batch).
        expected_cpu_cores: Some(tw.cpu * tw.usage),
        replicas: 1,
        ..Workload::default()
    };
    match tw.kind {
        Kind::Service => {
            out.expected_duration_s = settings.service_expected_s;
            if let (Some(region), Some(slo)) = (&tw.region, tw.slo_ms) {
                out.latency_slo_ms.insert(region.clone(), slo);
            }
        }
        Kind::Batch => out.expected_duration_s = tw.duration_s.unwrap_or(3600.0),
    }
    out
}

/// The optimizer target of node `n`: `allocated` requested, `used_cores` in use, awake or
/// asleep, under the cluster's carbon outlook.
pub fn node_target(
    fleet: &Fleet,
    n: usize,
    allocated: Resources,
    used_cores: f64,
    powered_on: bool,
    carbon: CarbonOutlook,
) -> Target {
    let ty = fleet.node_type(n);
    Target {
        name: fleet.nodes[n].name.clone(),
        kind: TargetKind::Node,
        capacity: Resources::new(ty.cores, ty.memory_gib * GIB, 0.0),
        allocated,
        idle_watts: ty.idle_watts(),
        max_watts: ty.max_watts(),
        utilisation: ty.utilisation(used_cores),
        powered_on,
        node_type: ty.name.clone(),
        carbon,
        labels: BTreeMap::new(),
        power_cap_watts: None,
        latency_ms: fleet
            .regions()
            .iter()
            .filter_map(|r| Some((r.clone(), fleet.latency_ms(r, n)?)))
            .collect(),
    }
}

/// Carbon outlook of each cluster at `t`: the intensity now and the settings' forecast.
pub fn carbon_outlooks(
    fleet: &Fleet,
    settings: &Settings,
    t: DateTime<Utc>,
) -> Result<Vec<CarbonOutlook>> {
    settings
        .forecast
        .outlooks(fleet, t, settings.forecast_hours, settings.forecast_seed)
}
