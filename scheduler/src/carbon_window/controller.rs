//! The carbon-window controller: watches unscheduled pods, plans each gated one
//! ([`super::hold`]), records a hold on the pod (annotations and an Event) and removes the
//! gate with a JSON patch when its window starts — at the latest its deadline less its
//! run time. Only the Lease holder writes; every replica watches and counts overdue pods.
//! A restart reads the holds back from the pods' annotations: nothing lives only here.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::refresher::Clock;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use optimizer::shift::SlotBudget;
use tokio::sync::watch;

use super::hold::{GATE, GatedPod, HoldSettings, Plan, Release, ZoneOutlook, unbook};
use super::metrics::WindowMetrics;
use crate::config::{Config, LeaseConfig};
use crate::extender::events::{EventKind, EventSink, PodEvent};

/// Reason of the Event saying until when a pod is held, and why.
pub const HELD: &str = "EcoplaceHeld";
/// Reason of the Event saying that the gate was removed, and why then.
pub const RELEASED: &str = "EcoplaceReleased";

/// The field manager of the controller's patches.
const FIELD_MANAGER: &str = "ecoplace-carbon-window";
/// Longest wait between two retries of a failed gate removal.
const MAX_RETRY: Duration = Duration::seconds(60);
/// Longest forecast read for one round (the deadline of a pod may be further).
const MAX_HORIZON: Duration = Duration::days(7);

/// What the controller reads of the configuration, taken from the whole `Config` once.
#[derive(Debug, Clone)]
pub struct WindowSettings {
    /// Carbon zones the pods may run in.
    pub zones: Vec<String>,
    /// The per-zone, per-slot budget's slot and cores.
    pub slot: Duration,
    /// Cores per zone and slot.
    pub cores_per_slot: f64,
    /// Planning settings.
    pub hold: HoldSettings,
    /// How often due pods are looked for.
    pub check: std::time::Duration,
    /// Held past the latest start by this much: overdue.
    pub overdue_after: Duration,
    /// The Lease.
    pub lease: LeaseConfig,
}

impl WindowSettings {
    /// The controller's part of `config`.
    pub fn of(config: &Config) -> Self {
        let w = &config.carbon_window;
        let zones = if w.zones.is_empty() {
            let t = &config.topology;
            let set: BTreeSet<String> = t
                .carbon_zones
                .values()
                .chain(t.default_carbon_zone.iter())
                .cloned()
                .collect();
            set.into_iter().collect()
        } else {
            w.zones.clone()
        };
        let seconds = |s: f64| Duration::milliseconds((s * 1000.0).round() as i64);
        Self {
            zones,
            slot: Duration::minutes(i64::from(w.slot_minutes)),
            cores_per_slot: w.cores_per_slot,
            hold: HoldSettings {
                default_duration: seconds(
                    w.default_duration_seconds
                        .unwrap_or(config.policy.expected_duration_seconds),
                ),
                watts_per_core: w.watts_per_core,
                min_saving: w.min_saving_percent / 100.0,
            },
            check: std::time::Duration::from_secs_f64(w.check_seconds),
            overdue_after: seconds(w.overdue_after_seconds),
            lease: LeaseConfig::from(&w.lease),
        }
    }
}

/// The controller and what it talks to.
pub struct Controller {
    /// The apiserver.
    pub client: kube::Client,
    /// Grid carbon intensity and forecasts.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// What it reads of the configuration.
    pub settings: Arc<WindowSettings>,
    /// The clock plans and releases are timed by.
    pub clock: Clock,
    /// Where pod Events go.
    pub events: Arc<dyn EventSink>,
    /// Metrics.
    pub metrics: WindowMetrics,
}

/// One gated pod and what was decided for it.
#[derive(Debug)]
struct Tracked {
    pod: GatedPod,
    /// Index of the gate in `spec.schedulingGates` (the JSON patch's path).
    gate: usize,
    plan: Option<Plan>,
    /// The gate removal succeeded; the watch has not shown it yet.
    released: bool,
    /// A failed removal: not before then, and how many failed in a row.
    retry_at: Option<DateTime<Utc>>,
    failures: u32,
}

/// What the watch knows: gated pods by UID, and the UIDs a re-list has shown so far.
#[derive(Debug, Default)]
struct Pods {
    by_uid: BTreeMap<String, Tracked>,
    relisting: Option<BTreeSet<String>>,
}

/// The pod as the controller sees it, and its gate's index, when it is unscheduled,
/// not being deleted, and carries the gate.
pub fn gated(pod: &Pod) -> Option<(GatedPod, usize)> {
    let spec = pod.spec.as_ref()?;
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        || pod.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let gate = spec
        .scheduling_gates
        .as_ref()?
        .iter()
        .position(|g| g.name == GATE)?;
    let m = &pod.metadata;
    let created = m
        .creation_timestamp
        .as_ref()
        .and_then(|t| {
            DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        })
        .unwrap_or_default();
    Some((
        GatedPod {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            created,
            annotations: m.annotations.clone().unwrap_or_default(),
            cpu_cores: crate::fleet::requests::pod_requests(pod).cpu,
        },
        gate,
    ))
}

impl Pods {
    fn apply(&mut self, pod: &Pod, budget: &mut SlotBudget) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(seen) = &mut self.relisting {
            seen.insert(uid.clone());
        }
        match gated(pod) {
            Some((facts, gate)) => {
                let t = self.by_uid.entry(uid).or_insert_with(|| Tracked {
                    pod: facts.clone(),
                    gate,
                    plan: None,
                    released: false,
                    retry_at: None,
                    failures: 0,
                });
                t.pod = facts;
                t.gate = gate;
            }
            None => self.forget(&uid, budget, "its gate is gone or it was scheduled"),
        }
    }

    fn forget(&mut self, uid: &str, budget: &mut SlotBudget, why: &str) {
        let Some(t) = self.by_uid.remove(uid) else {
            return;
        };
        if t.released {
            return;
        }
        if let Some(plan) = &t.plan {
            unbook(plan, budget);
            tracing::info!(pod = %t.pod.key(), "carbon window: no longer held ({why}) before its release");
        }
    }

    fn event(&mut self, event: watcher::Event<Pod>, budget: &mut SlotBudget) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => self.apply(&pod, budget),
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.forget(&uid, budget, "deleted");
            }
            watcher::Event::Init => self.relisting = Some(BTreeSet::new()),
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<String> = self
                        .by_uid
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget(&uid, budget, "gone while the watch was away");
                    }
                }
            }
        }
    }
}

impl Controller {
    /// Watches gated pods until `stop` completes; plans and releases them while `leading`
    /// is true.
    pub async fn run_until(self, leading: watch::Receiver<bool>, stop: impl Future<Output = ()>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields("spec.nodeName=");
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut pods = Pods::default();
        let mut budget = SlotBudget::new(self.settings.slot, self.settings.cores_per_slot);
        let mut tick = tokio::time::interval(self.settings.check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        let mut led = false;
        tracing::info!(zones = ?self.settings.zones, "carbon-window controller started");
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                event = stream.next() => match event {
                    Some(Ok(e)) => pods.event(e, &mut budget),
                    Some(Err(e)) => tracing::warn!("carbon window: pod watch: {e}"),
                    None => break,
                },
                _ = tick.tick() => {
                    let lead = *leading.borrow();
                    if lead != led {
                        led = lead;
                        if lead {
                            tracing::info!(held = pods.by_uid.len(), "carbon window: this replica holds the Lease: it plans and releases the gated pods");
                        } else {
                            tracing::info!("carbon window: this replica does not hold the Lease: it watches and counts overdue pods only");
                        }
                    }
                    self.round(&mut pods, &mut budget, lead).await;
                }
            }
        }
        self.metrics.leader.set(0);
        tracing::info!("carbon-window controller stopped");
    }

    /// One look at every gated pod: gauges; then, leading, plans for new pods and gate
    /// removals for due ones.
    async fn round(&self, pods: &mut Pods, budget: &mut SlotBudget, leading: bool) {
        let now = (self.clock)();
        let s = &self.settings;
        self.metrics.leader.set(i64::from(leading));
        self.metrics.held.set(pods.by_uid.len() as i64);
        let overdue = pods
            .by_uid
            .values()
            .filter(|t| {
                !t.released && now > t.pod.latest_start(s.hold.default_duration) + s.overdue_after
            })
            .count();
        self.metrics.overdue.set(overdue as i64);
        budget.forget_before(now);
        if !leading {
            return;
        }
        self.plan_new(pods, budget, now).await;
        let due: Vec<String> = pods
            .by_uid
            .iter()
            .filter(|(_, t)| {
                !t.released
                    && t.retry_at.is_none_or(|r| r <= now)
                    && t.plan.as_ref().is_some_and(|p| {
                        p.release_at
                            .min(t.pod.latest_start(s.hold.default_duration))
                            <= now
                    })
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            if let Some(t) = pods.by_uid.get_mut(&uid) {
                self.release(t, now).await;
            }
        }
    }

    /// Plans every pod without a plan (oldest first, so the budget goes to who waited
    /// longest): a hold recorded on the pod is kept; otherwise one is chosen from the
    /// zones' forecasts, recorded on the pod and announced.
    async fn plan_new(&self, pods: &mut Pods, budget: &mut SlotBudget, now: DateTime<Utc>) {
        let s = &self.settings;
        let mut new: Vec<&mut Tracked> = pods
            .by_uid
            .values_mut()
            .filter(|t| t.plan.is_none())
            .collect();
        if new.is_empty() {
            return;
        }
        new.sort_by(|a, b| (a.pod.created, &a.pod.uid).cmp(&(b.pod.created, &b.pod.uid)));
        let horizon = new
            .iter()
            .filter_map(|t| t.pod.window(s.hold.default_duration).ok())
            .map(|w| w.deadline)
            .max()
            .unwrap_or(now)
            .clamp(now, now + MAX_HORIZON);
        let zones = self.outlooks(now, horizon).await;
        for t in new {
            if let Some(plan) = t.pod.recorded(now, &s.hold, budget) {
                tracing::info!(pod = %t.pod.key(), release_at = %plan.release_at, "carbon window: hold recorded on the pod kept");
                t.plan = Some(plan);
                continue;
            }
            let plan = t.pod.plan(now, &zones, &s.hold, budget);
            if plan.holds(now) {
                self.record(&t.pod, &plan).await;
                tracing::info!(pod = %t.pod.key(), release_at = %plan.release_at, "carbon window: {}", plan.note);
                self.events.publish(PodEvent::about(
                    &t.pod.namespace,
                    &t.pod.name,
                    &t.pod.uid,
                    EventKind::Normal,
                    HELD,
                    plan.note.clone(),
                ));
            }
            t.plan = Some(plan);
        }
    }

    /// Every zone's outlook from `now` to `to` (or as far as its forecast reaches); a zone
    /// without one keeps the reason.
    async fn outlooks(&self, now: DateTime<Utc>, to: DateTime<Utc>) -> Vec<ZoneOutlook> {
        let source = self.carbon.as_ref();
        let to = to.max(now + Duration::minutes(1));
        let mut out = Vec::with_capacity(self.settings.zones.len());
        for zone in &self.settings.zones {
            let o = match source.intensity_at(zone, now).await {
                Err(e) => Err(e.to_string()),
                Ok(g) => match crate::fleet::outlook::forecast_ahead(source, zone, now, to).await {
                    Ok(forecast) => Ok(optimizer::CarbonOutlook {
                        now_g_per_kwh: g,
                        forecast,
                    }),
                    Err(e) => Err(format!("no forecast ahead ({e})")),
                },
            };
            out.push((zone.clone(), o));
        }
        out
    }

    /// Writes the hold's annotations on the pod (a merge patch); a failure is logged and
    /// counted (the hold still happens; a restart would plan it afresh).
    async fn record(&self, pod: &GatedPod, plan: &Plan) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let patch = serde_json::json!({"metadata": {"annotations": plan.annotations()}});
        if let Err(e) = api
            .patch(&pod.name, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            self.metrics.patch_errors.inc();
            tracing::warn!(pod = %pod.key(), "carbon window: recording the hold on the pod: {e}");
        }
    }

    /// Removes the gate (a JSON patch that first tests the pod's UID and the gate's place,
    /// so it never touches another pod or gate); counts, explains and logs the release.
    async fn release(&self, t: &mut Tracked, now: DateTime<Utc>) {
        let Some(plan) = &t.plan else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &t.pod.namespace);
        let gate = format!("/spec/schedulingGates/{}", t.gate);
        let ops = serde_json::json!([
            {"op": "test", "path": "/metadata/uid", "value": t.pod.uid},
            {"op": "test", "path": format!("{gate}/name"), "value": GATE},
            {"op": "remove", "path": gate},
        ]);
        let patch: json_patch::Patch = match serde_json::from_value(ops) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("carbon window: building the gate removal: {e}");
                return;
            }
        };
        match api
            .patch(&t.pod.name, &patch_params(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => {
                t.released = true;
                t.failures = 0;
                let reason = plan.reason;
                let waited = (now - t.pod.created).num_milliseconds().max(0) as f64 / 1000.0;
                self.metrics
                    .released
                    .with_label_values(&[reason.as_str()])
                    .inc();
                self.metrics.hold_seconds.observe(waited);
                if reason == Release::Window {
                    self.metrics.saved_g.inc_by(plan.saved_g.max(0.0));
                }
                let latest = t.pod.latest_start(self.settings.hold.default_duration);
                let note = release_note(plan, now, latest, &t.pod);
                tracing::info!(pod = %t.pod.key(), reason = reason.as_str(), "carbon window: {note}");
                let kind = if reason.is_warning() {
                    EventKind::Warning
                } else {
                    EventKind::Normal
                };
                self.events.publish(PodEvent::about(
                    &t.pod.namespace,
                    &t.pod.name,
                    &t.pod.uid,
                    kind,
                    RELEASED,
                    note,
                ));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                // Deleted meanwhile: the watch's DELETED event forgets it.
                t.released = true;
            }
            Err(e) => {
                self.metrics.patch_errors.inc();
                t.failures += 1;
                let wait = (Duration::from_std(self.settings.check)
                    .unwrap_or(Duration::seconds(5))
                    * 2_i32.saturating_pow(t.failures.min(6)))
                .min(MAX_RETRY);
                t.retry_at = Some(now + wait);
                tracing::warn!(pod = %t.pod.key(), "carbon window: removing the gate failed ({e}); retrying in {} s", wait.num_seconds());
            }
        }
    }
}

/// A wait in words: `5 min 45 s`, `3 h 10 min`.
fn waited(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    if s >= 3600 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// The controller's patches, signed with its field manager.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The released Event's note: the plan's own for a release at once, else when and for
/// which window.
fn release_note(plan: &Plan, now: DateTime<Utc>, latest: DateTime<Utc>, pod: &GatedPod) -> String {
    if plan.reason != Release::Window {
        return plan.note.clone();
    }
    let late = (now - plan.release_at).num_seconds();
    let zone = plan.zone.as_deref().unwrap_or("its zone");
    let mut note = format!(
        "released after {} for its carbon window in {zone}: ≈ {} saved against starting at once",
        waited(now - pod.created),
        optimizer::shift::grams(plan.saved_g)
    );
    if plan.release_at > latest {
        note.push_str(" (at its latest start: the deadline moved)");
    } else if late > 300 {
        note.push_str(&format!(
            " ({late} s after the planned {})",
            plan.release_at.format("%H:%M UTC")
        ));
    }
    note
}
