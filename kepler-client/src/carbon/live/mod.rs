//! Live grid carbon intensity from the services operators use (Electricity Maps, WattTime,
//! a carbon-aware-sdk WebAPI), kept current in the background.
//!
//! [`LiveCarbon`] answers [`CarbonIntensitySource`] lookups from what it last fetched —
//! never on the caller's path to the network. A background task ([`LiveCarbon::spawn`])
//! refreshes each zone's latest value and forecast on their own periods, backs off on
//! errors and honours `429 Retry-After`. A zone whose last successful refresh is older than
//! `maxAgeSeconds` is *stale*: asking it about now or later is a [`CarbonError::Stale`]
//! (the extender's `carbon_missing`, never a zero), while what it fetched about the past
//! stays usable. Where a forecast has no point, the latest measured value holds from now
//! until the next forecast point (a persistence forecast).

mod carbon_aware_sdk;
mod config;
mod electricity_maps;
mod provider;
mod watttime;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CarbonError, CarbonIntensitySource, IntensityPoint};
use crate::refresher::Clock;

pub use carbon_aware_sdk::{CarbonAwareSdk, timespan_seconds};
pub use config::{
    CarbonAwareSdkConfig, ElectricityMapsConfig, EmissionFactorConfig, LiveRefreshConfig,
    WattTimeConfig,
};
pub use electricity_maps::{ElectricityMaps, EmissionFactor};
pub use provider::{FETCH_ERROR_KINDS, FetchError, Provider, Secret, SecretFile};
pub use watttime::{GRAMS_PER_POUND, WattTime, g_per_kwh_per_unit};

/// How often each zone is refreshed and when its data goes stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refresh {
    /// Period of the latest-value refresh.
    pub latest: Duration,
    /// Period of the forecast refresh.
    pub forecast: Duration,
    /// Age of the last successful refresh after which the zone is stale.
    pub max_age: Duration,
    /// Bound of one call to the provider.
    pub timeout: Duration,
    /// How much past data is kept in memory.
    pub retain: Duration,
}

/// What a refresh fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// The latest value.
    Latest,
    /// The forecast.
    Forecast,
}

impl Fetch {
    fn as_str(self) -> &'static str {
        match self {
            Self::Latest => "latest",
            Self::Forecast => "forecast",
        }
    }
}

/// One interval held for a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    end: DateTime<Utc>,
    g: f64,
    /// Measured (latest, history), not forecast.
    measured: bool,
}

/// What is held for one zone.
#[derive(Debug, Clone, Default)]
struct ZoneData {
    /// Intervals by start, sorted, not overlapping.
    series: BTreeMap<DateTime<Utc>, Held>,
    /// The most recent measured point.
    latest: Option<IntensityPoint>,
    latest_ok: Option<DateTime<Utc>>,
    forecast_ok: Option<DateTime<Utc>>,
    /// The end of the history loaded ([`LiveCarbon::load_history`]): known without a refresh.
    history_until: Option<DateTime<Utc>>,
    /// The last refresh error, until a refresh of the same kind succeeds.
    last_error: Option<String>,
    failing: [bool; 2],
}

impl ZoneData {
    fn last_ok(&self) -> Option<DateTime<Utc>> {
        self.latest_ok.max(self.forecast_ok)
    }

    /// Adds `points`; measured ones replace whatever they overlap, forecast ones only
    /// other forecast points.
    fn insert(&mut self, points: &[IntensityPoint], measured: bool) {
        let measured_until = self
            .series
            .values()
            .filter(|h| h.measured)
            .map(|h| h.end)
            .max();
        for p in points {
            let end = p.start + chrono::Duration::seconds(p.duration_s);
            let mut start = p.start;
            if !measured && let Some(m) = measured_until {
                if end <= m {
                    continue;
                }
                start = start.max(m);
            }
            // Cut what overlaps [start, end).
            if let Some((&s, h)) = self.series.range(..start).next_back()
                && h.end > start
            {
                if measured || !h.measured {
                    let cut = Held { end: start, ..*h };
                    self.series.insert(s, cut);
                } else {
                    continue;
                }
            }
            let inside: Vec<DateTime<Utc>> =
                self.series.range(start..end).map(|(s, _)| *s).collect();
            let mut blocked = false;
            for s in inside {
                if let Some(h) = self.series.get(&s).copied() {
                    if h.measured && !measured {
                        blocked = true;
                        break;
                    }
                    self.series.remove(&s);
                    if h.end > end {
                        self.series.insert(end, h);
                    }
                }
            }
            if !blocked {
                self.series.insert(
                    start,
                    Held {
                        end,
                        g: p.g_per_kwh,
                        measured,
                    },
                );
            }
        }
    }

    /// Drops intervals that ended before `before`.
    fn trim(&mut self, before: DateTime<Utc>) {
        self.series.retain(|_, h| h.end >= before);
    }

    fn covering(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Held)> {
        self.series
            .range(..=t)
            .next_back()
            .filter(|(_, h)| h.end > t)
            .map(|(s, h)| (*s, *h))
    }

    fn coverage(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let first = self.series.keys().next()?;
        let last = self.series.values().map(|h| h.end).max()?;
        Some((*first, last))
    }
}

/// What one zone's data looks like now (`/metrics`, `/readyz`, `telemetry`).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneStatus {
    /// The ecoplace zone.
    pub zone: String,
    /// The provider's zone, region or location.
    pub provider_zone: String,
    /// The intensity held for now, gCO2e/kWh (none: unknown or stale).
    pub now_g_per_kwh: Option<f64>,
    /// Seconds since the last successful refresh.
    pub age_s: Option<f64>,
    /// Seconds of forecast held beyond now.
    pub horizon_s: Option<f64>,
    /// Whether the data is older than the limit (or there is none yet).
    pub stale: bool,
    /// The last refresh error, if the last refresh of a kind failed.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct State {
    zones: BTreeMap<String, ZoneData>,
    errors: BTreeMap<&'static str, u64>,
}

struct Inner {
    provider: Arc<dyn Provider>,
    /// ecoplace zone → provider zone.
    zones: BTreeMap<String, String>,
    refresh: Refresh,
    clock: Clock,
    state: RwLock<State>,
}

/// Carbon intensity from a live [`Provider`], served from memory and kept current by a
/// background task; cheap to clone.
#[derive(Clone)]
pub struct LiveCarbon {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LiveCarbon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCarbon")
            .field("source", &self.inner.provider.name())
            .field("zones", &self.inner.zones)
            .finish_non_exhaustive()
    }
}

/// The background refresh; stops when dropped.
#[derive(Debug)]
pub struct RefreshTask(tokio::task::JoinHandle<()>);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LiveCarbon {
    /// A source over `provider` for `zones` (ecoplace zone → provider zone), on `clock`;
    /// it holds nothing until refreshed.
    pub fn new(
        provider: Arc<dyn Provider>,
        zones: BTreeMap<String, String>,
        refresh: Refresh,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider,
                zones,
                refresh,
                clock,
                state: RwLock::default(),
            }),
        }
    }

    /// The provider's short name (`electricitymaps`, `watttime`, `carbon-aware-sdk`).
    pub fn source_name(&self) -> &'static str {
        self.inner.provider.name()
    }

    /// What the intensity means (`lifecycle`, `direct`, `marginal`, `average`).
    pub fn signal(&self) -> String {
        self.inner.provider.signal().to_string()
    }

    /// The zones served, ecoplace zone → provider zone.
    pub fn zones(&self) -> &BTreeMap<String, String> {
        &self.inner.zones
    }

    /// The source in words, e.g. `watttime co2_moer (marginal) for CAISO=CAISO_NORTH`.
    pub fn describe(&self) -> String {
        let zones: Vec<String> = self
            .inner
            .zones
            .iter()
            .map(|(z, p)| {
                if z == p {
                    z.clone()
                } else {
                    format!("{z}={p}")
                }
            })
            .collect();
        format!(
            "{} ({} intensity) for {}",
            self.source_name(),
            self.signal(),
            zones.join(", ")
        )
    }

    /// Refresh failures so far by [`FetchError::kind`].
    pub fn error_counts(&self) -> BTreeMap<&'static str, u64> {
        self.inner
            .state
            .read()
            .map(|s| s.errors.clone())
            .unwrap_or_default()
    }

    /// Every zone's status now.
    pub fn status(&self) -> Vec<ZoneStatus> {
        let now = (self.inner.clock)();
        let Ok(state) = self.inner.state.read() else {
            return Vec::new();
        };
        self.inner
            .zones
            .iter()
            .map(|(zone, provider_zone)| {
                let data = state.zones.get(zone).cloned().unwrap_or_default();
                let age_s = data
                    .last_ok()
                    .map(|ok| (now - ok).as_seconds_f64().max(0.0));
                let stale = !self.fresh(&data, now);
                let now_g = (!stale)
                    .then(|| self.walk(&data, now, now + chrono::Duration::seconds(1), now))
                    .and_then(|p| p.first().map(|p| p.g_per_kwh));
                let horizon_s = data
                    .coverage()
                    .map(|(_, end)| (end - now).as_seconds_f64().max(0.0));
                ZoneStatus {
                    zone: zone.clone(),
                    provider_zone: provider_zone.clone(),
                    now_g_per_kwh: now_g,
                    age_s,
                    horizon_s,
                    stale,
                    last_error: data.last_error.clone(),
                }
            })
            .collect()
    }

    fn fresh(&self, data: &ZoneData, now: DateTime<Utc>) -> bool {
        data.last_ok().is_some_and(|ok| {
            (now - ok)
                .to_std()
                .map_or(true, |age| age <= self.inner.refresh.max_age)
        })
    }

    /// One fetch of `what` for `zone`, stored; the error is recorded and returned.
    pub async fn refresh(&self, zone: &str, what: Fetch) -> Result<(), FetchError> {
        let Some(provider_zone) = self.inner.zones.get(zone) else {
            return Ok(());
        };
        let now = (self.inner.clock)();
        let provider = &self.inner.provider;
        let bound = self.inner.refresh.timeout * 3;
        let call = async {
            match what {
                Fetch::Latest => provider.latest(provider_zone, now).await,
                Fetch::Forecast => provider.forecast(provider_zone, now).await,
            }
        };
        let result = match tokio::time::timeout(bound, call).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: format!("{} {}", provider.name(), what.as_str()),
                seconds: bound.as_secs_f64(),
            }),
        };
        let Ok(mut state) = self.inner.state.write() else {
            return Ok(());
        };
        let slot = usize::from(what == Fetch::Forecast);
        match result {
            Ok(points) => {
                let retain = chrono::Duration::from_std(self.inner.refresh.retain)
                    .unwrap_or(chrono::Duration::days(2));
                let data = state.zones.entry(zone.to_string()).or_default();
                match what {
                    Fetch::Latest => {
                        data.insert(&points, true);
                        if let Some(last) = points.last() {
                            data.latest = Some(*last);
                        }
                        data.latest_ok = Some(now);
                    }
                    Fetch::Forecast => {
                        data.insert(&points, false);
                        data.forecast_ok = Some(now);
                    }
                }
                data.trim(now - retain);
                if data.failing[slot] {
                    tracing::info!(
                        zone,
                        source = provider.name(),
                        what = what.as_str(),
                        "carbon refresh recovered"
                    );
                }
                data.failing[slot] = false;
                if !data.failing.iter().any(|f| *f) {
                    data.last_error = None;
                }
                Ok(())
            }
            Err(e) => {
                *state.errors.entry(e.kind()).or_default() += 1;
                let data = state.zones.entry(zone.to_string()).or_default();
                if !data.failing[slot] {
                    tracing::warn!(
                        zone,
                        source = provider.name(),
                        what = what.as_str(),
                        "carbon refresh failed: {e}"
                    );
                } else {
                    tracing::debug!(
                        zone,
                        source = provider.name(),
                        what = what.as_str(),
                        "carbon refresh failed again: {e}"
                    );
                }
                data.failing[slot] = true;
                data.last_error = Some(format!("{} refresh: {e}", what.as_str()));
                Err(e)
            }
        }
    }

    /// The latest value and forecast of every zone once, concurrently.
    pub async fn refresh_all(&self) {
        let calls = self.inner.zones.keys().flat_map(|z| {
            [Fetch::Latest, Fetch::Forecast].map(|what| async move {
                let _ = self.refresh(z, what).await;
            })
        });
        futures::future::join_all(calls).await;
    }

    /// Refreshes every zone once, then keeps refreshing in the background until the
    /// returned task is dropped.
    pub async fn start(&self) -> RefreshTask {
        self.refresh_all().await;
        self.spawn()
    }

    /// Keeps every zone current in the background (first refresh one period from now).
    pub fn spawn(&self) -> RefreshTask {
        let me = self.clone();
        RefreshTask(tokio::spawn(async move { me.run().await }))
    }

    async fn run(&self) {
        use tokio::time::Instant;
        let r = self.inner.refresh;
        let period = |what: Fetch| match what {
            Fetch::Latest => r.latest,
            Fetch::Forecast => r.forecast,
        };
        struct Job {
            zone: String,
            what: Fetch,
            due: Instant,
            failures: u32,
        }
        let start = Instant::now();
        let mut jobs: Vec<Job> = self
            .inner
            .zones
            .keys()
            .flat_map(|z| {
                [Fetch::Latest, Fetch::Forecast].map(|what| Job {
                    zone: z.clone(),
                    what,
                    due: start + period(what),
                    failures: 0,
                })
            })
            .collect();
        let mut paused_until = start;
        loop {
            let Some(next) = jobs.iter().map(|j| j.due).min() else {
                return;
            };
            tokio::time::sleep_until(next.max(paused_until)).await;
            for j in jobs.iter_mut() {
                let now = Instant::now();
                if j.due > now || paused_until > now {
                    continue;
                }
                match self.refresh(&j.zone, j.what).await {
                    Ok(()) => {
                        j.failures = 0;
                        j.due = Instant::now() + period(j.what);
                    }
                    Err(e) => {
                        j.failures = j.failures.saturating_add(1);
                        let wait = backoff(period(j.what), j.failures);
                        let wait = match e {
                            FetchError::RateLimited { retry_after, .. } => {
                                let w = retry_after
                                    .unwrap_or(wait)
                                    .clamp(Duration::from_millis(100), Duration::from_secs(3600));
                                // The provider asked every caller to wait.
                                paused_until = Instant::now() + w;
                                w
                            }
                            _ => wait,
                        };
                        j.due = Instant::now() + wait;
                    }
                }
            }
        }
    }

    /// Fetches the provider's history of every zone over `[from, to)` (in calls of at most
    /// its longest span) for lookups in the past, e.g. a report's period.
    pub async fn load_history(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(), CarbonError> {
        if from >= to {
            return Err(CarbonError::InvalidWindow { from, to });
        }
        let span = self.inner.provider.max_history_span();
        for (zone, provider_zone) in &self.inner.zones {
            let mut cursor = from;
            while cursor < to {
                let end = (cursor + span).min(to);
                let points = self
                    .inner
                    .provider
                    .history(provider_zone, cursor, end)
                    .await;
                let points = match points {
                    Ok(p) => p,
                    Err(FetchError::Empty { .. }) => Vec::new(),
                    Err(e) => {
                        if let Ok(mut s) = self.inner.state.write() {
                            *s.errors.entry(e.kind()).or_default() += 1;
                        }
                        return Err(CarbonError::Fetch {
                            zone: zone.clone(),
                            source_name: self.source_name().to_string(),
                            message: e.to_string(),
                        });
                    }
                };
                if let Ok(mut s) = self.inner.state.write() {
                    let data = s.zones.entry(zone.clone()).or_default();
                    data.insert(&points, true);
                    data.history_until = data.history_until.max(Some(end));
                }
                cursor = end;
            }
        }
        Ok(())
    }

    /// Contiguous intervals from `from` towards `to`, clipped: held intervals, and the
    /// latest value from `now` on where nothing is held (when `fresh`).
    fn walk(
        &self,
        data: &ZoneData,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<IntensityPoint> {
        let fresh = self.fresh(data, now);
        let mut out = Vec::new();
        let mut cursor = from;
        while cursor < to {
            let (end, g) = if let Some((_, h)) = data.covering(cursor) {
                (h.end.min(to), h.g)
            } else if let Some(l) = data
                .latest
                .filter(|l| fresh && l.start <= cursor && cursor <= now)
            {
                let next = data.series.range(cursor..).next().map_or(to, |(s, _)| *s);
                (next.min(to), l.g_per_kwh)
            } else {
                break;
            };
            if end <= cursor {
                break;
            }
            out.push(IntensityPoint {
                start: cursor,
                duration_s: (end - cursor).num_seconds().max(1),
                g_per_kwh: g,
            });
            cursor = end;
        }
        out
    }

    /// The held intervals over `[from, to)` after the staleness and zone checks.
    fn lookup(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError> {
        if !self.inner.zones.contains_key(zone) {
            return Err(CarbonError::UnknownZone {
                zone: zone.to_string(),
                known: self.inner.zones.keys().cloned().collect(),
            });
        }
        let now = (self.inner.clock)();
        let state = self.inner.state.read().map_err(|_| CarbonError::Fetch {
            zone: zone.to_string(),
            source_name: self.source_name().to_string(),
            message: "internal state poisoned".into(),
        })?;
        let empty = ZoneData::default();
        let data = state.zones.get(zone).unwrap_or(&empty);
        // Asking past what was known at the last success (or what a history load covered)
        // needs that success to be recent.
        let known = data.last_ok().max(data.history_until);
        let beyond = known.is_none_or(|k| to > k);
        if beyond && !self.fresh(data, now) {
            return Err(CarbonError::Stale {
                zone: zone.to_string(),
                source_name: self.source_name().to_string(),
                age_s: data.last_ok().map(|ok| (now - ok).as_seconds_f64()),
                limit_s: self.inner.refresh.max_age.as_secs_f64(),
                last_error: data.last_error.clone(),
            });
        }
        let points = self.walk(data, from, to, now);
        if points.is_empty() {
            let coverage = data.coverage().unwrap_or((from, from));
            return Err(CarbonError::OutOfCoverage {
                zone: zone.to_string(),
                from,
                to: if to - from <= chrono::Duration::seconds(1) {
                    from
                } else {
                    to
                },
                coverage,
                gap: None,
            });
        }
        Ok(points)
    }
}

/// The wait after the `failures`-th failure in a row: 5 s doubling, at most `period`.
fn backoff(period: Duration, failures: u32) -> Duration {
    let base = period.min(Duration::from_secs(5));
    base.saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(period)
}

#[async_trait::async_trait]
impl CarbonIntensitySource for LiveCarbon {
    async fn intensity_at(&self, zone: &str, t: DateTime<Utc>) -> Result<f64, CarbonError> {
        let points = self.lookup(zone, t, t + chrono::Duration::seconds(1))?;
        points
            .first()
            .map(|p| p.g_per_kwh)
            .ok_or(CarbonError::InvalidWindow { from: t, to: t })
    }

    async fn forecast(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError> {
        if from >= to {
            return Err(CarbonError::InvalidWindow { from, to });
        }
        self.lookup(zone, from, to)
    }
}

#[cfg(test)]
mod tests;
