//! Time shifting of deferrable work: the start slot (and target) that minimises the
//! forecast carbon of a job's whole run while it still finishes before its deadline, under
//! a per-slot capacity budget that keeps the cleanest hour from becoming a thundering herd.
//!
//! Pure: the time is a parameter, the forecast is what the caller holds (never the truth).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::model::CarbonOutlook;

/// A job that may start later: how long it runs, what it holds while running, and when it
/// may start and must be done.
#[derive(Debug, Clone, PartialEq)]
pub struct DeferrableJob {
    /// Name, for the explanation.
    pub name: String,
    /// Expected run time.
    pub duration: Duration,
    /// CPU cores it holds while running (what the budget counts).
    pub cores: f64,
    /// The earliest start (usually now).
    pub earliest: DateTime<Utc>,
    /// When it must be done.
    pub deadline: DateTime<Utc>,
}

/// Where the job can run: the target's zone outlook and the job's predicted extra power
/// there.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftCandidate {
    /// Target (node pool, cluster) name.
    pub target: String,
    /// The zone's carbon intensity, now and forecast.
    pub carbon: CarbonOutlook,
    /// How far the forecast is known: runs ending later are not chosen (only the earliest
    /// start is, whatever the forecast).
    pub forecast_until: DateTime<Utc>,
    /// The job's extra power on this target, watts.
    pub watts: f64,
}

/// How long a forecast's last point is trusted to hold past its start (hourly points: one
/// hour).
pub const LAST_POINT_HOLDS: Duration = Duration::hours(1);

impl ShiftCandidate {
    /// A candidate whose forecast is known up to its last point plus
    /// [`LAST_POINT_HOLDS`] (`at` when it has none: only starting at once is priced).
    pub fn new(
        target: impl Into<String>,
        carbon: CarbonOutlook,
        watts: f64,
        at: DateTime<Utc>,
    ) -> Self {
        let forecast_until = carbon
            .forecast
            .last()
            .map_or(at, |(last, _)| *last + LAST_POINT_HOLDS);
        Self {
            target: target.into(),
            carbon,
            forecast_until,
            watts,
        }
    }
}

/// Cores per target and time slot that deferred jobs may use; what is reserved so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotBudget {
    /// Slot length (starts are aligned to it, from the Unix epoch).
    pub slot: Duration,
    /// Cores per slot and target available to deferred jobs.
    pub cores_per_slot: f64,
    used: BTreeMap<(String, i64), f64>,
}

/// Why the job starts when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftReason {
    /// The cleanest window that fits the budget and the deadline.
    Cleanest,
    /// Starting now is the cleanest choice that fits the budget.
    NowIsCleanest,
    /// The deadline leaves no room to wait: start now.
    DeadlineNear,
    /// No later window has budget left before the deadline: start now.
    BudgetFull,
    /// No candidate target: start now, wherever it lands.
    NoCandidate,
}

impl ShiftReason {
    /// The reason as a label (`cleanest`, `deadline_near`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cleanest => "cleanest",
            Self::NowIsCleanest => "now_is_cleanest",
            Self::DeadlineNear => "deadline_near",
            Self::BudgetFull => "budget_full",
            Self::NoCandidate => "no_candidate",
        }
    }
}

/// The chosen start and target, with the carbon it saves against starting now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftDecision {
    /// When to start.
    pub start: DateTime<Utc>,
    /// Where (absent only with [`ShiftReason::NoCandidate`]).
    pub target: Option<String>,
    /// Why.
    pub reason: ShiftReason,
    /// Whether the start fits the budget (reserve it with [`SlotBudget::reserve`]).
    pub within_budget: bool,
    /// Mean forecast intensity over the chosen run, gCO2e/kWh.
    pub chosen_g_per_kwh: f64,
    /// Mean forecast intensity over a run started now on the best target now, gCO2e/kWh.
    pub now_g_per_kwh: f64,
    /// Forecast carbon of the chosen run, grams.
    pub chosen_g: f64,
    /// Forecast carbon of the run started now on the best target now, grams.
    pub now_g: f64,
}

impl ShiftDecision {
    /// Grams saved against starting now (≥ 0).
    pub fn saved_g(&self) -> f64 {
        (self.now_g - self.chosen_g).max(0.0)
    }

    /// How long the job waits.
    pub fn delay(&self, job: &DeferrableJob) -> Duration {
        self.start - job.earliest
    }

    /// One sentence, e.g. `held until 03:00 UTC: forecast 118 g/kWh vs 342 now, ≈ 41 g
    /// saved`.
    pub fn explain(&self, job: &DeferrableJob) -> String {
        match self.reason {
            ShiftReason::Cleanest => format!(
                "held until {}: forecast {:.0} g/kWh vs {:.0} now, ≈ {} saved (deadline {})",
                self.start.format("%Y-%m-%d %H:%M UTC"),
                self.chosen_g_per_kwh,
                self.now_g_per_kwh,
                grams(self.saved_g()),
                job.deadline.format("%Y-%m-%d %H:%M UTC"),
            ),
            ShiftReason::NowIsCleanest => format!(
                "released now: {:.0} g/kWh now is the cleanest before the deadline",
                self.now_g_per_kwh
            ),
            ShiftReason::DeadlineNear => format!(
                "released now: the deadline {} leaves no room to wait a {} min run",
                job.deadline.format("%Y-%m-%d %H:%M UTC"),
                job.duration.num_minutes()
            ),
            ShiftReason::BudgetFull => {
                "released now: every cleaner window before the deadline is fully booked".into()
            }
            ShiftReason::NoCandidate => "released now: no candidate target to price".into(),
        }
    }
}

impl SlotBudget {
    /// A budget of `cores_per_slot` per target and slot of length `slot` (≥ 1 minute).
    pub fn new(slot: Duration, cores_per_slot: f64) -> Self {
        Self {
            slot: slot.max(Duration::minutes(1)),
            cores_per_slot,
            used: BTreeMap::new(),
        }
    }

    fn index(&self, t: DateTime<Utc>) -> i64 {
        let s = self.slot.num_seconds().max(1);
        t.timestamp().div_euclid(s)
    }

    /// The slots a run over `[start, start + duration)` touches.
    fn slots(&self, start: DateTime<Utc>, duration: Duration) -> std::ops::RangeInclusive<i64> {
        let end = start + duration - Duration::nanoseconds(1);
        self.index(start)..=self.index(end.max(start))
    }

    /// Cores reserved on `target` in the slot holding `t`.
    pub fn used(&self, target: &str, t: DateTime<Utc>) -> f64 {
        self.used
            .get(&(target.to_string(), self.index(t)))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether `cores` more fit on `target` in every slot of the run.
    pub fn fits(&self, target: &str, start: DateTime<Utc>, duration: Duration, cores: f64) -> bool {
        self.slots(start, duration).all(|i| {
            let used = self
                .used
                .get(&(target.to_string(), i))
                .copied()
                .unwrap_or(0.0);
            used + cores <= self.cores_per_slot + 1e-9
        })
    }

    /// Books the decision's run (nothing when it is outside the budget or has no target).
    pub fn reserve(&mut self, job: &DeferrableJob, d: &ShiftDecision) {
        let (true, Some(target)) = (d.within_budget, &d.target) else {
            return;
        };
        for i in self.slots(d.start, job.duration) {
            *self.used.entry((target.clone(), i)).or_default() += job.cores;
        }
    }

    /// Forgets the slots that ended before `t` (a long-running booker stays bounded).
    pub fn forget_before(&mut self, t: DateTime<Utc>) {
        let now = self.index(t);
        self.used.retain(|(_, i), _| *i >= now);
    }

    /// Frees what a job booked at `start` on `target` (it was deleted or started elsewhere).
    pub fn release(&mut self, job: &DeferrableJob, target: &str, start: DateTime<Utc>) {
        for i in self.slots(start, job.duration) {
            if let Some(u) = self.used.get_mut(&(target.to_string(), i)) {
                *u = (*u - job.cores).max(0.0);
            }
        }
    }
}

/// Grams in words: one decimal below 10 g (`0.4 g`), whole grams above (`429 g`).
pub fn grams(g: f64) -> String {
    if g.abs() < 10.0 {
        format!("{g:.1} g")
    } else {
        format!("{g:.0} g")
    }
}

/// Forecast grams of a run of `job` on `c` starting at `start`, and its mean intensity.
fn priced(job: &DeferrableJob, c: &ShiftCandidate, start: DateTime<Utc>) -> (f64, f64) {
    let g_per_kwh = c.carbon.mean_over(start, job.duration);
    let kwh = c.watts.max(0.0) / 1000.0 * job.duration.num_milliseconds() as f64 / 3_600_000.0;
    (kwh * g_per_kwh, g_per_kwh)
}

/// The start slot and target of least forecast carbon for `job` among `candidates`, that
/// finishes by the deadline, runs inside each candidate's forecast and fits `budget`. The
/// earliest start is always a choice; later ones are the slot boundaries up to
/// `deadline − duration` (and that instant itself). Ties go to the earlier start, then
/// to the candidate listed first. When waiting is impossible or nothing later fits, the
/// job starts at `earliest` (never past its deadline because of the budget).
pub fn choose_start(
    job: &DeferrableJob,
    candidates: &[ShiftCandidate],
    budget: &SlotBudget,
) -> ShiftDecision {
    let now_choice = candidates
        .iter()
        .map(|c| (c, priced(job, c, job.earliest)))
        .min_by(|a, b| a.1.0.total_cmp(&b.1.0));
    let Some((now_c, (now_g, now_gpk))) = now_choice else {
        return ShiftDecision {
            start: job.earliest,
            target: None,
            reason: ShiftReason::NoCandidate,
            within_budget: false,
            chosen_g_per_kwh: 0.0,
            now_g_per_kwh: 0.0,
            chosen_g: 0.0,
            now_g: 0.0,
        };
    };
    // Starting at `earliest` for `reason`: on the cleanest target with room, else on the
    // cleanest target (outside the budget).
    let at_earliest = |reason| {
        let fitting = candidates
            .iter()
            .filter(|c| budget.fits(&c.target, job.earliest, job.duration, job.cores))
            .map(|c| (c, priced(job, c, job.earliest)))
            .min_by(|a, b| a.1.0.total_cmp(&b.1.0));
        let (c, (g, gpk), within_budget) = match fitting {
            Some((c, p)) => (c, p, true),
            None => (now_c, (now_g, now_gpk), false),
        };
        ShiftDecision {
            start: job.earliest,
            target: Some(c.target.clone()),
            reason,
            within_budget,
            chosen_g_per_kwh: gpk,
            now_g_per_kwh: now_gpk,
            chosen_g: g,
            now_g,
        }
    };
    let latest = job.deadline - job.duration;
    if latest <= job.earliest {
        return at_earliest(ShiftReason::DeadlineNear);
    }
    let mut best: Option<(f64, f64, DateTime<Utc>, &ShiftCandidate)> = None;
    for c in candidates {
        let last = latest.min(c.forecast_until - job.duration);
        for start in starts(job.earliest, last, budget.slot) {
            if !budget.fits(&c.target, start, job.duration, job.cores) {
                continue;
            }
            let (g, gpk) = priced(job, c, start);
            let better = match &best {
                None => true,
                Some((bg, _, bs, _)) => g < *bg - 1e-9 || ((g - *bg).abs() <= 1e-9 && start < *bs),
            };
            if better {
                best = Some((g, gpk, start, c));
            }
        }
    }
    match best {
        None => at_earliest(ShiftReason::BudgetFull),
        Some((g, gpk, start, c)) => ShiftDecision {
            start,
            target: Some(c.target.clone()),
            reason: if start == job.earliest {
                ShiftReason::NowIsCleanest
            } else {
                ShiftReason::Cleanest
            },
            within_budget: true,
            chosen_g_per_kwh: gpk,
            now_g_per_kwh: now_gpk,
            chosen_g: g,
            now_g,
        },
    }
}

/// `earliest`, then every slot boundary after it up to `last`, then `last` itself.
fn starts(earliest: DateTime<Utc>, last: DateTime<Utc>, slot: Duration) -> Vec<DateTime<Utc>> {
    let mut out = vec![earliest];
    if last <= earliest {
        return out;
    }
    let s = slot.num_seconds().max(60);
    let mut t = DateTime::from_timestamp((earliest.timestamp().div_euclid(s) + 1) * s, 0)
        .unwrap_or(earliest);
    // At most a week of slots.
    let mut n = 0;
    while t < last && n < 7 * 24 * 60 {
        out.push(t);
        t += Duration::seconds(s);
        n += 1;
    }
    out.push(last);
    out
}

#[cfg(test)]
mod tests;
