//! The publisher: every period, while leading, list the hub's ManagedClusters, score the
//! available ones with fresh telemetry ([`super::scores`]) and write each cluster's
//! `AddOnPlacementScore` status (create if absent, PUT the status subresource with the
//! read resourceVersion, retry on 409).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kepler_client::Refresher;
use kepler_client::carbon::CarbonIntensitySource;
use kepler_client::refresher::Clock;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use optimizer::{PowerModel, Resources, Weights};
use tokio::sync::watch;

use super::OcmSettings;
use super::crd::{
    AddOnPlacementScore, AddOnPlacementScoreStatus, ManagedCluster, chrono_time, kube_time,
};
use super::metrics::OcmMetrics;
use super::scores::{self, ClusterFacts, ScoreOptions, Scored, Skip};
use crate::fleet::{outlook, quantity};

/// The condition type the publisher sets on every AddOnPlacementScore.
pub const CONDITION_TYPE: &str = "ScoresCurrent";
/// Condition reason of freshly published scores.
pub const PUBLISHED: &str = "Published";
/// Status writes tried per cluster and round before counting a failure (409 retries).
const MAX_ATTEMPTS: usize = 4;

/// Everything the publisher reads.
pub struct Publisher {
    /// Hub apiserver client.
    pub client: Client,
    /// Kepler telemetry (clusters keyed by the cluster label).
    pub refresher: Arc<Refresher>,
    /// Grid carbon intensity.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// Configuration (`ocm`, `topology`, `telemetry`, `policy`, `power`).
    pub settings: Arc<OcmSettings>,
    /// The clock scores and expiries are stamped with.
    pub clock: Clock,
    /// Power model pricing the reference replica (fitted curves).
    pub power: Arc<dyn PowerModel>,
    /// Metrics.
    pub metrics: OcmMetrics,
}

/// What one round did, per cluster.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Round {
    /// Clusters whose scores were refreshed.
    pub published: Vec<String>,
    /// Clusters left to expire, and why (their condition says it too).
    pub skipped: Vec<(String, String)>,
    /// Clusters not `ManagedClusterConditionAvailable`: not touched.
    pub unavailable: Vec<String>,
    /// Clusters whose write failed, with the error.
    pub failed: Vec<(String, String)>,
}

impl Publisher {
    /// Publishes every `ocm.periodSeconds` while `leader` says so (at once on winning the
    /// Lease), until `leader`'s sender is gone.
    pub async fn run(self, leader: watch::Receiver<bool>) {
        self.run_until(leader, std::future::pending()).await;
    }

    /// [`Publisher::run`] until `stop` resolves too; a round in flight then finishes first.
    pub async fn run_until(
        self,
        mut leader: watch::Receiver<bool>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let period = Duration::from_secs(self.settings.ocm.period_seconds.max(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    self.metrics.leader.set(0);
                    return;
                }
                _ = tick.tick() => {}
                changed = leader.changed() => {
                    if changed.is_err() {
                        self.metrics.leader.set(0);
                        return;
                    }
                }
            }
            let leading = *leader.borrow_and_update();
            self.metrics.leader.set(i64::from(leading));
            if !leading {
                continue;
            }
            match self.publish_once().await {
                Ok(r) => tracing::info!(
                    published = r.published.len(),
                    skipped = r.skipped.len(),
                    unavailable = r.unavailable.len(),
                    failed = r.failed.len(),
                    "OCM scores published"
                ),
                Err(e) => {
                    self.metrics.failures.inc();
                    tracing::warn!("listing ManagedClusters: {e}");
                }
            }
        }
    }

    /// One round: list, score, write. Errs only when ManagedClusters cannot be listed.
    pub async fn publish_once(&self) -> Result<Round, kube::Error> {
        let now = (self.clock)();
        let clusters = Api::<ManagedCluster>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        let mut round = Round::default();
        let mut facts = Vec::new();
        let mut skips = Vec::new();
        let snapshot = self.refresher.latest().snapshot.clone();
        let data = snapshot.as_deref().map_or(
            DataTime {
                taken_at: now,
                stale_at: now,
            },
            |s| DataTime::of(s.taken_at, self.settings.telemetry_stale_after_seconds),
        );
        for mc in &clusters.items {
            let name = mc.name_any();
            if !mc.is_available() {
                self.metrics
                    .publish
                    .with_label_values(&["cluster_unavailable"])
                    .inc();
                round.unavailable.push(name);
                continue;
            }
            match self.facts(mc, snapshot.as_deref(), now).await {
                Ok(f) => facts.push(f),
                Err(skip) => skips.push((name, skip)),
            }
        }
        self.metrics.carbon.set(
            facts
                .iter()
                .map(|f| (f.zone.as_str(), f.carbon.now_g_per_kwh)),
            facts.iter().map(|f| {
                let g = f.power.total_watts * f.carbon.now_g_per_kwh / 1000.0;
                ("cluster", f.name.as_str(), f.zone.as_str(), g)
            }),
        );
        let options = self.options();
        let scored = match scores::score_clusters(&facts, &options, now, self.power.as_ref()) {
            Ok(s) => s,
            Err(e) => facts
                .iter()
                .map(|_| Err(Skip::Infeasible(format!("power model: {e}"))))
                .collect(),
        };
        let outcomes = facts
            .iter()
            .map(|f| f.name.clone())
            .zip(scored)
            .chain(skips.into_iter().map(|(n, s)| (n, Err(s))));
        for (name, outcome) in outcomes {
            let result = match &outcome {
                Ok(_) => "published",
                Err(s) => s.metric_result(),
            };
            match self.write(&name, &outcome, now, data).await {
                Ok(()) => {
                    self.metrics.publish.with_label_values(&[result]).inc();
                    match outcome {
                        Ok(_) => round.published.push(name),
                        Err(s) => round.skipped.push((name, s.reason().to_string())),
                    }
                }
                Err(e) => {
                    self.metrics.publish.with_label_values(&["failed"]).inc();
                    self.metrics.failures.inc();
                    tracing::warn!(cluster = %name, "writing AddOnPlacementScore: {e}");
                    round.failed.push((name, e.to_string()));
                }
            }
        }
        Ok(round)
    }

    fn options(&self) -> ScoreOptions {
        let c = &self.settings;
        let preset = c.ocm.objective.as_deref().unwrap_or(&c.policy.objective);
        ScoreOptions {
            weights: Weights::preset(preset).unwrap_or_default(),
            user_regions: c
                .ocm
                .user_regions
                .iter()
                .map(|r| {
                    let region = c.topology.user_region(r).unwrap_or(r);
                    (r.clone(), region.to_string())
                })
                .collect(),
            combined_region: c
                .policy
                .user_region
                .as_deref()
                .and_then(|r| c.topology.user_region(r))
                .map(str::to_string),
            reference_cpu_cores: c.ocm.reference_cpu_cores,
            duration_s: c.policy.expected_duration_seconds,
            node_profile: c.node_profile,
        }
    }

    /// What is known about one available cluster, or why it cannot be scored.
    async fn facts(
        &self,
        mc: &ManagedCluster,
        snapshot: Option<&kepler_client::FleetSnapshot>,
        now: DateTime<Utc>,
    ) -> Result<ClusterFacts, Skip> {
        let name = mc.name_any();
        let c = &self.settings;
        let power = scores::cluster_power(snapshot, &name, now, c.telemetry_stale_after_seconds)?;
        let alloc = mc.status.as_ref().map(|s| &s.allocatable);
        let quantity = |key: &str| {
            alloc
                .and_then(|a| a.get(key))
                .map(|q| quantity::parse(&q.0, key))
        };
        let cpu = match quantity("cpu") {
            Some(Ok(cpu)) if cpu > 0.0 => cpu,
            Some(Err(e)) => return Err(Skip::CapacityUnknown(e.to_string())),
            _ => {
                return Err(Skip::CapacityUnknown(
                    "ManagedCluster status.allocatable has no cpu".into(),
                ));
            }
        };
        let memory = match quantity("memory") {
            Some(Ok(m)) => m,
            _ => 0.0,
        };
        let region = mc.labels().get(&c.ocm.region_label).cloned();
        let zone = region
            .as_ref()
            .map(|r| c.topology.carbon_zone_of(r))
            .or_else(|| c.topology.default_carbon_zone.clone());
        let Some(zone) = zone else {
            return Err(Skip::CarbonMissing(format!(
                "no `{}` label and no topology.defaultCarbonZone",
                c.ocm.region_label
            )));
        };
        let horizon = chrono::Duration::seconds(c.policy.expected_duration_seconds as i64);
        let carbon = outlook(self.carbon.as_ref(), &zone, now, now + horizon)
            .await
            .map_err(|e| Skip::CarbonMissing(format!("zone `{zone}`: {e}")))?;
        let latency_ms = region
            .as_ref()
            .map(|r| c.topology.latency_to(r))
            .unwrap_or_default();
        Ok(ClusterFacts {
            name,
            zone,
            power,
            carbon,
            allocatable: Resources {
                cpu,
                memory,
                gpu: 0.0,
            },
            latency_ms,
            labels: mc.labels().clone(),
        })
    }

    /// Creates the cluster's AddOnPlacementScore if absent, then PUTs its status; a 409
    /// (someone else wrote in between) re-reads and retries.
    async fn write(
        &self,
        cluster: &str,
        outcome: &Result<Scored, Skip>,
        now: DateTime<Utc>,
        data: DataTime,
    ) -> Result<(), kube::Error> {
        let name = &self.settings.ocm.score_resource_name;
        let api = Api::<AddOnPlacementScore>::namespaced(self.client.clone(), cluster);
        let period = self.settings.ocm.period_seconds;
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let current = match api.get_opt(name).await? {
                Some(o) => o,
                None => match api
                    .create(
                        &PostParams::default(),
                        &AddOnPlacementScore::new(cluster, name),
                    )
                    .await
                {
                    Ok(o) => o,
                    Err(e) if is_conflict(&e) => {
                        last = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let status = next_status(current.status.as_ref(), outcome, now, period, data);
            if current.status.as_ref() == Some(&status) {
                return Ok(());
            }
            let mut obj = current;
            obj.types = Some(kube::core::TypeMeta::resource::<AddOnPlacementScore>());
            obj.status = Some(status);
            match api.replace_status(name, &PostParams::default(), &obj).await {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            kube::Error::Service(format!("{MAX_ATTEMPTS} conflicting writes").into())
        }))
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// When the telemetry behind a round's scores was taken, and when it turns stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataTime {
    /// The snapshot's time.
    pub taken_at: DateTime<Utc>,
    /// `taken_at` + `telemetry.staleAfterSeconds`: no score from it is valid past this.
    pub stale_at: DateTime<Utc>,
}

impl DataTime {
    /// Data taken at `taken_at`, stale `stale_after_s` seconds later.
    pub fn of(taken_at: DateTime<Utc>, stale_after_s: f64) -> Self {
        let ms = (stale_after_s * 1000.0).clamp(0.0, 86_400_000.0 * 365.0) as i64;
        Self {
            taken_at,
            stale_at: taken_at + chrono::Duration::milliseconds(ms),
        }
    }
}

/// The status to write: fresh scores valid for two periods, but never past the moment their
/// data turns stale (`data.stale_at`: while telemetry is failing, re-scoring the last
/// snapshot does not push the expiry on); or, when skipped, the previous scores and expiry
/// unchanged (they expire) with a condition saying why. A cluster never scored before gets
/// no scores and `validUntil = now`.
pub fn next_status(
    previous: Option<&AddOnPlacementScoreStatus>,
    outcome: &Result<Scored, Skip>,
    now: DateTime<Utc>,
    period_seconds: u64,
    data: DataTime,
) -> AddOnPlacementScoreStatus {
    let (status, reason, message, scores, valid_until) = match outcome {
        Ok(s) => {
            let names: Vec<&str> = s.items.iter().map(|i| i.name.as_str()).collect();
            let mut message = format!(
                "scores {} from telemetry taken at {}",
                names.join(", "),
                data.taken_at
            );
            for n in &s.notes {
                message.push_str("; ");
                message.push_str(n);
            }
            let secs = i64::try_from(period_seconds.saturating_mul(2)).unwrap_or(i64::MAX);
            let until =
                (now + chrono::Duration::seconds(secs.min(86_400 * 365))).min(data.stale_at);
            ("True", PUBLISHED, message, s.items.clone(), until)
        }
        Err(skip) => (
            "False",
            skip.reason(),
            format!("scores not refreshed (they expire): {}", skip.message()),
            previous.map(|p| p.scores.clone()).unwrap_or_default(),
            previous
                .and_then(|p| p.valid_until.as_ref())
                .and_then(chrono_time)
                .unwrap_or(now),
        ),
    };
    let transition = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == CONDITION_TYPE))
        .filter(|c| c.status == status)
        .map_or_else(|| kube_time(now), |c| c.last_transition_time.clone());
    let mut conditions: Vec<Condition> = previous
        .map(|p| {
            p.conditions
                .iter()
                .filter(|c| c.type_ != CONDITION_TYPE)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.push(Condition {
        type_: CONDITION_TYPE.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.chars().take(32_768).collect(),
        last_transition_time: transition,
        observed_generation: None,
    });
    AddOnPlacementScoreStatus {
        conditions,
        scores,
        valid_until: Some(kube_time(valid_until)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ocm::crd::AddOnPlacementScoreItem;
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 6, min, 0).unwrap()
    }

    /// Telemetry taken at `min`, stale 300 s later.
    fn data(min: u32) -> DataTime {
        DataTime::of(at(min), 300.0)
    }

    fn scored(value: i32) -> Result<Scored, Skip> {
        Ok(Scored {
            items: vec![AddOnPlacementScoreItem::new("ecoplace", value)],
            notes: vec![
                "no `latency-us` score: latency from us unknown (topology.latencyMs)".into(),
            ],
        })
    }

    #[test]
    fn fresh_scores_are_valid_for_two_periods() {
        let s = next_status(None, &scored(40), at(0), 60, data(0));
        assert_eq!(s.scores, [AddOnPlacementScoreItem::new("ecoplace", 40)]);
        assert_eq!(s.valid_until, Some(kube_time(at(2))));
        let c = &s.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", PUBLISHED));
        assert!(c.message.contains("latency-us"), "{}", c.message);
        assert_eq!(c.last_transition_time, kube_time(at(0)));
    }

    #[test]
    fn scores_are_never_valid_past_their_data_turning_stale() {
        // Telemetry last taken at 06:00 (stale at 06:05), re-scored at 06:04 and 06:05 with
        // a 60 s period: the expiry stops at 06:05 instead of moving to 06:06, 06:07.
        let s = next_status(None, &scored(40), at(4), 60, data(0));
        assert_eq!(s.valid_until, Some(kube_time(at(5))));
        let again = next_status(Some(&s), &scored(40), at(5), 60, data(0));
        assert_eq!(again.valid_until, Some(kube_time(at(5))));
        let msg = &again.conditions[0].message;
        assert!(msg.contains(&format!("taken at {}", at(0))), "{msg}");
    }

    #[test]
    fn a_skip_keeps_old_scores_and_expiry_and_says_why() {
        let first = next_status(None, &scored(40), at(0), 60, data(0));
        let skip = Err(Skip::TelemetryStale("snapshot is 900 s old".into()));
        let s = next_status(Some(&first), &skip, at(1), 60, data(0));
        assert_eq!(s.scores, first.scores);
        assert_eq!(s.valid_until, first.valid_until);
        let c = &s.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "TelemetryStale")
        );
        assert!(c.message.contains("900 s old"));
        assert_eq!(c.last_transition_time, kube_time(at(1)));
        // Still stale a minute later: same transition time.
        let again = next_status(Some(&s), &skip, at(2), 60, data(0));
        assert_eq!(again.conditions[0].last_transition_time, kube_time(at(1)));
        // Never scored: nothing to keep, already expired.
        let none = next_status(None, &skip, at(3), 60, data(0));
        assert!(none.scores.is_empty());
        assert_eq!(none.valid_until, Some(kube_time(at(3))));
    }

    #[test]
    fn other_writers_conditions_are_kept() {
        let mut prev = next_status(None, &scored(1), at(0), 60, data(0));
        let mut other = prev.conditions[0].clone();
        other.type_ = "SomethingElse".into();
        prev.conditions.push(other);
        let s = next_status(Some(&prev), &scored(2), at(1), 60, data(1));
        assert_eq!(s.conditions.len(), 2);
        assert!(s.conditions.iter().any(|c| c.type_ == "SomethingElse"));
        assert_eq!(s.conditions[1].last_transition_time, kube_time(at(0)));
    }
}
