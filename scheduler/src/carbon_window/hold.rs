//! Holding one gated pod, without Kubernetes types: its window (from its annotations) and
//! the plan — when to release it, where its run is booked, and why — from the zones'
//! carbon forecasts through `optimizer::shift::choose_start`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use optimizer::CarbonOutlook;
use optimizer::shift::{DeferrableJob, ShiftCandidate, ShiftDecision, ShiftReason, SlotBudget};

/// The scheduling gate the controller removes: pods carrying it wait for their window.
pub const GATE: &str = "ecoplace.io/carbon-window";
/// Annotation: when the pod's work must be done, RFC 3339 (`2026-12-04T18:00:00Z`).
pub const DEADLINE: &str = "ecoplace.io/deadline";
/// Annotation: how long after its creation the work must be done (`6h`, `90m`, `1h30m`,
/// or ISO 8601 `PT6H`); with `ecoplace.io/deadline` too, the earlier wins.
pub const MAX_DELAY: &str = "ecoplace.io/max-delay";
/// Annotation: how long the pod runs (same forms as `ecoplace.io/max-delay`).
pub const EXPECTED_DURATION: &str = "ecoplace.io/expected-duration";
/// Annotation written by ecoplace: when it releases the pod, RFC 3339.
pub const RELEASE_AT: &str = "ecoplace.io/release-at";
/// Annotation written by ecoplace: the carbon zone whose window the pod waits for.
pub const WINDOW_ZONE: &str = "ecoplace.io/window-zone";
/// Annotation written by ecoplace: forecast grams saved against starting at once.
pub const SAVED_G: &str = "ecoplace.io/estimated-saving-g";

/// CPU cores a pod without requests is priced with (it still draws power).
const MIN_PRICED_CORES: f64 = 0.1;

/// A pod carrying the gate, as the controller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatedPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Creation time (what `ecoplace.io/max-delay` counts from).
    pub created: DateTime<Utc>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// CPU cores it requests (what the slot budget counts).
    pub cpu_cores: f64,
}

impl GatedPod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// When a pod may start and must be done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// When its work must be done.
    pub deadline: DateTime<Utc>,
    /// How long it runs.
    pub duration: Duration,
}

impl Window {
    /// The last start that still meets the deadline.
    pub fn latest_start(&self) -> DateTime<Utc> {
        self.deadline - self.duration
    }
}

/// Why a pod's annotations give no window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Neither a deadline nor a maximum delay.
    #[error("neither {DEADLINE} nor {MAX_DELAY} is set")]
    NoDeadline,
    /// An annotation that does not parse.
    #[error("annotation {annotation}=\"{value}\": {reason}")]
    Annotation {
        /// Its key.
        annotation: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// A positive duration: Go-style `6h`, `90m`, `1h30m`, `45s`, or ISO 8601 `PT6H`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .trim()
        .parse()
        .map_err(|_| "not a duration like 6h, 90m, 1h30m or PT6H".to_string())?;
    if d.is_negative() || d.is_zero() {
        return Err("must be positive".into());
    }
    Duration::from_std(d.unsigned_abs()).map_err(|_| "too long".to_string())
}

impl GatedPod {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The pod's window from its annotations; a run time from `default_duration` when it
    /// names none.
    pub fn window(&self, default_duration: Duration) -> Result<Window, Malformed> {
        let bad = |annotation, value: &str, reason: String| Malformed::Annotation {
            annotation,
            value: value.to_string(),
            reason,
        };
        let deadline = match self.annotation(DEADLINE) {
            Some(v) => Some(
                DateTime::parse_from_rfc3339(v.trim())
                    .map_err(|e| bad(DEADLINE, v, format!("not an RFC 3339 time ({e})")))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        let delayed = match self.annotation(MAX_DELAY) {
            Some(v) => Some(self.created + parse_duration(v).map_err(|r| bad(MAX_DELAY, v, r))?),
            None => None,
        };
        let deadline = match (deadline, delayed) {
            (Some(a), Some(b)) => a.min(b),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => return Err(Malformed::NoDeadline),
        };
        let duration = match self.annotation(EXPECTED_DURATION) {
            Some(v) => parse_duration(v).map_err(|r| bad(EXPECTED_DURATION, v, r))?,
            None => default_duration,
        };
        Ok(Window { deadline, duration })
    }

    /// The last moment it may stay gated: its latest start, or its creation when its
    /// annotations give no window (it should have been released at once).
    pub fn latest_start(&self, default_duration: Duration) -> DateTime<Utc> {
        self.window(default_duration)
            .map_or(self.created, |w| w.latest_start())
    }
}

/// Why a pod is released when it is (the `reason` label of
/// `ecoplace_carbon_window_released_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Release {
    /// Held for the cleanest window that fits the budget and the deadline.
    Window,
    /// Starting at once is the cleanest choice.
    NowIsCleanest,
    /// The deadline leaves no room to wait.
    DeadlineNear,
    /// Every cleaner window before the deadline is booked.
    BudgetFull,
    /// The best window saves less than `minSavingPercent`.
    SmallSaving,
    /// No zone has a forecast (fail safe: ecoplace's missing data never delays a pod).
    NoForecast,
    /// No carbon zone configured to price.
    NoZone,
    /// Its annotations give no window.
    Malformed,
}

impl Release {
    /// Every reason, for metrics exported at 0.
    pub const ALL: [Self; 8] = [
        Self::Window,
        Self::NowIsCleanest,
        Self::DeadlineNear,
        Self::BudgetFull,
        Self::SmallSaving,
        Self::NoForecast,
        Self::NoZone,
        Self::Malformed,
    ];

    /// The reason as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::NowIsCleanest => "now_is_cleanest",
            Self::DeadlineNear => "deadline_near",
            Self::BudgetFull => "budget_full",
            Self::SmallSaving => "small_saving",
            Self::NoForecast => "no_forecast",
            Self::NoZone => "no_zone",
            Self::Malformed => "malformed",
        }
    }

    /// Whether the pod owner should look (a malformed annotation, missing forecasts).
    pub fn is_warning(self) -> bool {
        matches!(self, Self::Malformed | Self::NoForecast | Self::NoZone)
    }
}

/// When a pod is released, where its run is booked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// When to remove the gate.
    pub release_at: DateTime<Utc>,
    /// Why then.
    pub reason: Release,
    /// The zone whose window it waits for (and whose slots it booked).
    pub zone: Option<String>,
    /// Forecast grams saved against starting at once.
    pub saved_g: f64,
    /// One sentence for the pod's Event.
    pub note: String,
    /// The last moment it may stay gated.
    pub latest_start: DateTime<Utc>,
    /// The run booked in the budget (to free it if the pod goes away first).
    pub booked: Option<DeferrableJob>,
}

impl Plan {
    /// Whether the pod waits (its release is in the future).
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.release_at > now
    }

    /// The annotations recording a hold on the pod (what a restarted controller reads).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([(
            RELEASE_AT.to_string(),
            self.release_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )]);
        if let Some(z) = &self.zone {
            out.insert(WINDOW_ZONE.into(), z.clone());
        }
        out.insert(SAVED_G.into(), format!("{:.1}", self.saved_g));
        out
    }
}

/// What planning reads besides the pod and the forecasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldSettings {
    /// Run time of pods without `ecoplace.io/expected-duration`.
    pub default_duration: Duration,
    /// Watts per requested core (the grams).
    pub watts_per_core: f64,
    /// Minimum saving to hold for, a share of the run-now carbon (0.05: 5 %).
    pub min_saving: f64,
}

/// One zone's outlook from now, or why there is none.
pub type ZoneOutlook = (String, Result<CarbonOutlook, String>);

impl GatedPod {
    fn job(&self, now: DateTime<Utc>, w: &Window) -> DeferrableJob {
        DeferrableJob {
            name: self.key(),
            duration: w.duration,
            cores: self.cpu_cores.max(MIN_PRICED_CORES),
            earliest: now,
            deadline: w.deadline,
        }
    }

    /// The plan recorded on the pod by an earlier decision (`ecoplace.io/release-at`,
    /// never past its latest start), with its run booked in `budget`; `None` when there
    /// is none or the annotations no longer give a window.
    pub fn recorded(
        &self,
        now: DateTime<Utc>,
        settings: &HoldSettings,
        budget: &mut SlotBudget,
    ) -> Option<Plan> {
        let at = DateTime::parse_from_rfc3339(self.annotation(RELEASE_AT)?.trim())
            .ok()?
            .with_timezone(&Utc);
        let w = self.window(settings.default_duration).ok()?;
        let release_at = at.min(w.latest_start());
        let zone = self.annotation(WINDOW_ZONE).map(str::to_string);
        let saved_g = self
            .annotation(SAVED_G)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|g| g.is_finite() && *g >= 0.0)
            .unwrap_or(0.0);
        let mut booked = None;
        if let Some(z) = &zone
            && release_at > now
        {
            let job = self.job(now, &w);
            budget.reserve(&job, &booked_decision(z, release_at));
            booked = Some(job);
        }
        Some(Plan {
            release_at,
            reason: Release::Window,
            zone,
            saved_g,
            note: format!(
                "held until {} (recorded on the pod), ≈ {saved_g:.0} g saved (deadline {})",
                release_at.format("%Y-%m-%d %H:%M UTC"),
                w.deadline.format("%Y-%m-%d %H:%M UTC"),
            ),
            latest_start: w.latest_start(),
            booked,
        })
    }

    /// Plans the pod's release at `now` from `zones`' outlooks, booking a held run in
    /// `budget`. Fail safe: malformed annotations, no zone, no forecast, a near deadline,
    /// a full budget or a small saving all release it at once.
    pub fn plan(
        &self,
        now: DateTime<Utc>,
        zones: &[ZoneOutlook],
        settings: &HoldSettings,
        budget: &mut SlotBudget,
    ) -> Plan {
        let at_once = |reason: Release, note: String, latest_start| Plan {
            release_at: now,
            reason,
            zone: None,
            saved_g: 0.0,
            note,
            latest_start,
            booked: None,
        };
        let w = match self.window(settings.default_duration) {
            Ok(w) => w,
            Err(m) => {
                return at_once(
                    Release::Malformed,
                    format!(
                        "released now: {m} (set {DEADLINE} to an RFC 3339 time or {MAX_DELAY} to a duration like 6h)"
                    ),
                    self.created,
                );
            }
        };
        if zones.is_empty() {
            return at_once(
                Release::NoZone,
                "released now: no carbon zone to price (set carbonWindow.zones or topology.carbonZones)".into(),
                w.latest_start(),
            );
        }
        let job = self.job(now, &w);
        if w.latest_start() <= now {
            // No room to wait: no forecast is needed to say so.
            return at_once(
                Release::DeadlineNear,
                format!(
                    "released now: the deadline {} leaves no room to wait a {} min run",
                    w.deadline.format("%Y-%m-%d %H:%M UTC"),
                    w.duration.num_minutes()
                ),
                w.latest_start(),
            );
        }
        let watts = job.cores * settings.watts_per_core;
        let mut missing = Vec::new();
        let mut candidates = Vec::new();
        for (zone, outlook) in zones {
            match outlook {
                Ok(o) if o.forecast.iter().any(|(t, _)| *t > now) => {
                    candidates.push(ShiftCandidate::new(zone.clone(), o.clone(), watts, now));
                }
                Ok(_) => missing.push(format!("{zone}: the forecast ends now")),
                Err(e) => missing.push(format!("{zone}: {e}")),
            }
        }
        if candidates.is_empty() {
            return at_once(
                Release::NoForecast,
                format!(
                    "released now: no carbon forecast ({}); ecoplace never delays a pod for its own missing data",
                    missing.join("; ")
                ),
                w.latest_start(),
            );
        }
        let d = optimizer::shift::choose_start(&job, &candidates, budget);
        let reason = match d.reason {
            ShiftReason::Cleanest => Release::Window,
            ShiftReason::NowIsCleanest => Release::NowIsCleanest,
            ShiftReason::DeadlineNear => Release::DeadlineNear,
            ShiftReason::BudgetFull => Release::BudgetFull,
            ShiftReason::NoCandidate => Release::NoForecast,
        };
        if reason == Release::Window && d.saved_g() < settings.min_saving * d.now_g {
            let share = if d.now_g > 0.0 {
                100.0 * d.saved_g() / d.now_g
            } else {
                0.0
            };
            return at_once(
                Release::SmallSaving,
                format!(
                    "released now: the cleanest window ({}, {:.0} g/kWh vs {:.0} now) saves only {share:.1} %, under carbonWindow.minSavingPercent {:.0} %",
                    d.start.format("%H:%M UTC"),
                    d.chosen_g_per_kwh,
                    d.now_g_per_kwh,
                    100.0 * settings.min_saving
                ),
                w.latest_start(),
            );
        }
        let holds = d.start > now;
        if holds {
            budget.reserve(&job, &d);
        }
        Plan {
            release_at: d.start,
            reason,
            zone: d.target.clone(),
            saved_g: d.saved_g(),
            note: d.explain(&job),
            latest_start: w.latest_start(),
            booked: (holds && d.within_budget).then_some(job),
        }
    }
}

/// A decision that books `zone` from `start` (what [`SlotBudget::reserve`] reads).
fn booked_decision(zone: &str, start: DateTime<Utc>) -> ShiftDecision {
    ShiftDecision {
        start,
        target: Some(zone.to_string()),
        reason: ShiftReason::Cleanest,
        within_budget: true,
        chosen_g_per_kwh: 0.0,
        now_g_per_kwh: 0.0,
        chosen_g: 0.0,
        now_g: 0.0,
    }
}

/// Frees the run `plan` booked in `budget` (the pod went away before its release).
pub fn unbook(plan: &Plan, budget: &mut SlotBudget) {
    if let (Some(job), Some(zone)) = (&plan.booked, &plan.zone) {
        budget.release(job, zone, plan.release_at);
    }
}

#[cfg(test)]
mod tests;
