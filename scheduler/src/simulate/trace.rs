//! Workload traces: long-running services (latency SLO per user region, replicas that
//! follow the users' day) and batch jobs (duration, deadline). A seeded generator, and a
//! CSV format to write and replay them (documented in docs/simulate.md).

use std::f64::consts::PI;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a trace row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Long-running, replicated, latency-sensitive; replicas follow the daily load.
    Service,
    /// Runs for a duration and must finish by a deadline.
    Batch,
}

/// One workload of a trace (one CSV row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceWorkload {
    /// Unique name.
    pub name: String,
    /// `service` or `batch`.
    pub kind: Kind,
    /// When it is submitted (RFC 3339, UTC).
    pub arrive: DateTime<Utc>,
    /// Service: when it is deleted (empty: runs to the end). Batch: empty.
    pub depart: Option<DateTime<Utc>>,
    /// CPU request of one pod, cores.
    pub cpu: f64,
    /// Memory request of one pod, GiB.
    pub memory_gib: f64,
    /// Service: replicas at the quietest hour (≥ 1). Batch: pods of the job.
    pub min_replicas: u32,
    /// Service: replicas at the daily peak. Batch: pods of the job (= `min_replicas`).
    pub max_replicas: u32,
    /// Fraction of the CPU request a pod uses (a service's autoscaling target, a batch
    /// job's use while running), 0..=1.
    pub usage: f64,
    /// Service: the users' region (a row of the latency matrix). Batch: empty.
    pub region: Option<String>,
    /// Service: the users' offset from UTC, hours (drives the daily pattern).
    pub utc_offset_h: Option<f64>,
    /// Service: round-trip latency SLO from `region`, ms (empty: none).
    pub slo_ms: Option<f64>,
    /// Batch: how long each pod runs, seconds.
    pub duration_s: Option<f64>,
    /// Batch: when the job must be finished (RFC 3339, UTC).
    pub deadline: Option<DateTime<Utc>>,
}

/// Replicas a service wants at `t`: `max · daily_load(local hour)`, rounded up, clamped
/// to `min..=max` (a horizontal autoscaler that tracks the users' day).
pub fn service_replicas(w: &TraceWorkload, t: DateTime<Utc>) -> u32 {
    let demand = service_demand(w, t);
    (demand.ceil() as u32).clamp(w.min_replicas, w.max_replicas)
}

/// Replicas' worth of load a service has at `t` (fractional): `max · daily_load`.
pub fn service_demand(w: &TraceWorkload, t: DateTime<Utc>) -> f64 {
    let h = f64::from(t.num_seconds_from_midnight()) / 3600.0 + w.utc_offset_h.unwrap_or(0.0);
    f64::from(w.max_replicas) * kepler_client::simulated::daily_load(h.rem_euclid(24.0))
}

/// Checks every row; errors name the row (1-based line of the CSV, header = line 1) and
/// the field.
pub fn validate(trace: &[TraceWorkload], regions: &[String]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in trace.iter().enumerate() {
        let at = |field: &str| format!("trace line {} (`{}`), field `{field}`", i + 2, w.name);
        if w.name.is_empty() || !names.insert(w.name.as_str()) {
            bail!("{}: empty or repeated name", at("name"));
        }
        if !(w.cpu.is_finite() && w.cpu > 0.0) {
            bail!("{}: {} must be > 0 cores", at("cpu"), w.cpu);
        }
        if !(w.memory_gib.is_finite() && w.memory_gib >= 0.0) {
            bail!("{}: {} must be ≥ 0 GiB", at("memory_gib"), w.memory_gib);
        }
        if !(0.0..=1.0).contains(&w.usage) {
            bail!("{}: {} must be in 0..=1", at("usage"), w.usage);
        }
        if w.min_replicas == 0 || w.max_replicas < w.min_replicas {
            bail!(
                "{}: need 1 ≤ min_replicas ≤ max_replicas (got {}..{})",
                at("max_replicas"),
                w.min_replicas,
                w.max_replicas
            );
        }
        match w.kind {
            Kind::Service => {
                let Some(region) = &w.region else {
                    bail!("{}: a service needs its users' region", at("region"));
                };
                if !regions.contains(region) {
                    bail!(
                        "{}: `{region}` is not in the latency matrix ({})",
                        at("region"),
                        regions.join(", ")
                    );
                }
                if let Some(slo) = w.slo_ms
                    && !(slo.is_finite() && slo > 0.0)
                {
                    bail!("{}: {slo} must be > 0 ms", at("slo_ms"));
                }
                if w.depart.is_some_and(|d| d <= w.arrive) {
                    bail!("{}: must be after arrive", at("depart"));
                }
            }
            Kind::Batch => {
                let Some(d) = w.duration_s.filter(|d| d.is_finite() && *d > 0.0) else {
                    bail!("{}: a batch job needs a duration > 0 s", at("duration_s"));
                };
                let Some(deadline) = w.deadline else {
                    bail!("{}: a batch job needs a deadline", at("deadline"));
                };
                if deadline < w.arrive + secs(d) {
                    bail!("{}: earlier than arrive + duration_s", at("deadline"));
                }
                if w.min_replicas != w.max_replicas {
                    bail!("{}: a batch job has a fixed pod count", at("max_replicas"));
                }
            }
        }
    }
    Ok(())
}

/// Seconds as a chrono duration (millisecond precision).
pub fn secs(s: f64) -> Duration {
    Duration::milliseconds((s * 1000.0).round() as i64)
}

/// Reads a CSV trace; errors name the line and the column.
pub fn read_csv(path: &Path) -> Result<Vec<TraceWorkload>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read trace {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("trace {}: reading the header row", path.display()))?
        .clone();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            anyhow::anyhow!("trace {} line {line}: {e}", path.display())
        })?;
        if !more {
            return Ok(out);
        }
        let line = record.position().map_or(0, csv::Position::line);
        let row: TraceWorkload = record
            .deserialize(Some(&headers))
            .map_err(|e| bad_row(&e, &headers, &record, path, line))?;
        out.push(row);
    }
}

/// A row that does not decode, by column name (`cpu`) and value when the CSV reader
/// knows which field failed.
fn bad_row(
    e: &csv::Error,
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    path: &Path,
    line: u64,
) -> anyhow::Error {
    let at = format!("trace {} line {line}", path.display());
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            match err.field().and_then(|i| usize::try_from(i).ok()) {
                Some(i) => anyhow::anyhow!(
                    "{at}, column `{}` (`{}`): {}",
                    headers.get(i).unwrap_or("?"),
                    record.get(i).unwrap_or(""),
                    err.kind()
                ),
                None => anyhow::anyhow!("{at}: {}", err.kind()),
            }
        }
        _ => anyhow::anyhow!("{at}: {e}"),
    }
}

/// Writes a trace as CSV (the format [`read_csv`] reads).
pub fn write_csv(trace: &[TraceWorkload], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("cannot write trace {}", path.display()))?;
    for row in trace {
        w.serialize(row)?;
    }
    w.flush()?;
    Ok(())
}

/// Knobs of the trace generator (defaults: the documented default scenario).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratorConfig {
    /// Services running at the start.
    pub initial_services: usize,
    /// Mean hours between new services.
    pub service_interarrival_h: f64,
    /// Mean lifetime of a service that arrives during the run, hours.
    pub service_lifetime_h: f64,
    /// Batch jobs per hour at night and weekends; twice this in office hours.
    pub batch_per_hour: f64,
    /// Median batch duration, minutes (log-normal, σ = 1, clamped to 5 min..8 h).
    pub batch_median_min: f64,
    /// User regions with their share of services and UTC offset.
    pub regions: Vec<(String, f64, f64)>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            initial_services: 60,
            service_interarrival_h: 4.0,
            service_lifetime_h: 72.0,
            batch_per_hour: 8.0,
            batch_median_min: 45.0,
            regions: vec![
                ("DE".into(), 0.45, 1.0),
                ("FR".into(), 0.25, 1.0),
                ("GB".into(), 0.30, 0.0),
            ],
        }
    }
}

impl GeneratorConfig {
    /// The embedded fleet's allocatable cores, the size the defaults are made for.
    pub const DEFAULT_FLEET_CORES: f64 = 856.0;

    /// The defaults scaled to a fleet of `cores` (services and batch arrivals in
    /// proportion), so a fleet of any size sees the same relative load.
    pub fn for_fleet_cores(cores: f64) -> Self {
        let f = (cores / Self::DEFAULT_FLEET_CORES).max(1e-3);
        let d = Self::default();
        Self {
            initial_services: ((d.initial_services as f64) * f).round().max(1.0) as usize,
            service_interarrival_h: d.service_interarrival_h / f,
            batch_per_hour: d.batch_per_hour * f,
            ..d
        }
    }
}

/// Generates a trace over `[start, start + days)` from `seed`: the same seed always
/// gives the same trace.
pub fn generate(
    cfg: &GeneratorConfig,
    seed: u64,
    start: DateTime<Utc>,
    days: f64,
) -> Vec<TraceWorkload> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7ace_5eed);
    let end = start + secs(days * 86_400.0);
    let mut out = Vec::new();
    for i in 0..cfg.initial_services {
        let depart = rng
            .random_bool(0.2)
            .then(|| start + secs(rng.random_range(0.1..1.0) * days * 86_400.0));
        out.push(service(&mut rng, cfg, format!("svc-{i:03}"), start, depart));
    }
    let mut t = start;
    let mut i = cfg.initial_services;
    loop {
        t += secs(exponential(&mut rng, cfg.service_interarrival_h * 3600.0));
        if t >= end {
            break;
        }
        let life = exponential(&mut rng, cfg.service_lifetime_h * 3600.0).max(1800.0);
        let depart = (t + secs(life) < end).then(|| t + secs(life));
        out.push(service(&mut rng, cfg, format!("svc-{i:03}"), t, depart));
        i += 1;
    }
    // Batch arrivals: a Poisson process thinned to the office-hours rate.
    let peak = 2.0 * cfg.batch_per_hour;
    let mut t = start;
    let mut j = 0;
    loop {
        t += secs(exponential(&mut rng, 3600.0 / peak));
        if t >= end {
            break;
        }
        if rng.random::<f64>() * peak > batch_rate(cfg, t) {
            continue;
        }
        out.push(batch(&mut rng, cfg, format!("job-{j:05}"), t));
        j += 1;
    }
    out.sort_by(|a, b| a.arrive.cmp(&b.arrive).then_with(|| a.name.cmp(&b.name)));
    out
}

/// Batch jobs per hour at `t`: doubled 08:00–18:00 CET on weekdays.
fn batch_rate(cfg: &GeneratorConfig, t: DateTime<Utc>) -> f64 {
    let local = t + Duration::hours(1);
    let office =
        !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) && (8..18).contains(&local.hour());
    if office {
        2.0 * cfg.batch_per_hour
    } else {
        cfg.batch_per_hour
    }
}

fn service(
    rng: &mut ChaCha8Rng,
    cfg: &GeneratorConfig,
    name: String,
    arrive: DateTime<Utc>,
    depart: Option<DateTime<Utc>>,
) -> TraceWorkload {
    let (region, offset) = pick_region(rng, cfg);
    let cpu = pick(rng, &[(0.5, 0.3), (1.0, 0.35), (2.0, 0.25), (4.0, 0.1)]);
    // Interactive (only the home cluster is close enough), standard, relaxed.
    let slo = pick(rng, &[(10.0, 0.4), (20.0, 0.4), (30.0, 0.2)]);
    let max = rng.random_range(2..=10u32);
    TraceWorkload {
        name,
        kind: Kind::Service,
        arrive,
        depart,
        cpu,
        memory_gib: round2(cpu * rng.random_range(1.0..4.0)),
        min_replicas: rng.random_range(1..=2u32).min(max),
        max_replicas: max,
        usage: round2(rng.random_range(0.4..0.8)),
        region: Some(region),
        utc_offset_h: Some(offset),
        slo_ms: Some(slo),
        duration_s: None,
        deadline: None,
    }
}

fn batch(
    rng: &mut ChaCha8Rng,
    cfg: &GeneratorConfig,
    name: String,
    arrive: DateTime<Utc>,
) -> TraceWorkload {
    let median = cfg.batch_median_min * 60.0;
    let duration = (median * normal(rng).exp())
        .clamp(300.0, 8.0 * 3600.0)
        .round();
    let slack = rng.random_range(1.5..6.0);
    let deadline = arrive + secs((duration * slack).max(duration + 1800.0));
    let cpu = pick(rng, &[(1.0, 0.3), (2.0, 0.35), (4.0, 0.25), (8.0, 0.1)]);
    TraceWorkload {
        name,
        kind: Kind::Batch,
        arrive,
        depart: None,
        cpu,
        memory_gib: round2(cpu * rng.random_range(1.0..3.0)),
        min_replicas: 1,
        max_replicas: 1,
        usage: round2(rng.random_range(0.85..1.0)),
        region: None,
        utc_offset_h: None,
        slo_ms: None,
        duration_s: Some(duration),
        deadline: Some(deadline),
    }
}

fn pick_region(rng: &mut ChaCha8Rng, cfg: &GeneratorConfig) -> (String, f64) {
    let total: f64 = cfg.regions.iter().map(|r| r.1).sum();
    let mut x = rng.random::<f64>() * total;
    for (name, share, offset) in &cfg.regions {
        if x < *share {
            return (name.clone(), *offset);
        }
        x -= share;
    }
    cfg.regions
        .last()
        .map_or((String::new(), 0.0), |r| (r.0.clone(), r.2))
}

fn pick(rng: &mut ChaCha8Rng, choices: &[(f64, f64)]) -> f64 {
    let mut x = rng.random::<f64>();
    for &(v, p) in choices {
        if x < p {
            return v;
        }
        x -= p;
    }
    choices.last().map_or(0.0, |c| c.0)
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn generated_traces_are_valid_seeded_and_round_trip_through_csv() {
        let start = Utc.with_ymd_and_hms(2020, 3, 2, 0, 0, 0).unwrap();
        let cfg = GeneratorConfig::default();
        let a = generate(&cfg, 1, start, 1.0);
        assert_eq!(a, generate(&cfg, 1, start, 1.0));
        assert_ne!(a, generate(&cfg, 2, start, 1.0));
        let regions = vec!["DE".to_string(), "FR".to_string(), "GB".to_string()];
        validate(&a, &regions).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write_csv(&a, &p).unwrap();
        assert_eq!(read_csv(&p).unwrap(), a);
    }

    #[test]
    fn bad_rows_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let header = "name,kind,arrive,depart,cpu,memory_gib,min_replicas,max_replicas,usage,region,utc_offset_h,slo_ms,duration_s,deadline\n";
        std::fs::write(
            &p,
            format!("{header}a,service,2020-03-02T00:00:00Z,,x,1,1,2,0.5,DE,1,10,,\n"),
        )
        .unwrap();
        let e = read_csv(&p).unwrap_err().to_string();
        // The column by name, with its value; not the CSV reader's 0-based field index.
        assert!(e.contains("line 2, column `cpu` (`x`)"), "{e}");
        assert!(!e.contains("field 4"), "{e}");
        std::fs::write(&p, "name,kind\na,service\n").unwrap();
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("missing field `arrive`"),
            "{e}"
        );
        std::fs::write(
            &p,
            format!("{header}a,batch,2020-03-02T00:00:00Z,,1,1,1,1,0.5,,,,600,\n"),
        )
        .unwrap();
        let rows = read_csv(&p).unwrap();
        let e = validate(&rows, &[]).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("deadline"), "{e}");
    }
}
