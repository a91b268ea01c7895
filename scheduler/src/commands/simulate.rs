//! `ecoplace simulate`: compare placement policies on a simulated fleet (docs/simulate.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::simulate::{
    self, Fleet, Forecast, GeneratorConfig, Policy, Scenario, Settings, output, pareto, sweep,
    trace,
};

/// Arguments of `ecoplace simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Days to simulate.
    #[arg(long, default_value_t = 7.0)]
    pub days: f64,
    /// First day (UTC midnight), inside the 2020 carbon data for the embedded fleet.
    #[arg(long, default_value = "2020-03-02", conflicts_with = "seasons")]
    pub start: String,
    /// Seed of the embedded fleet and the generated trace.
    #[arg(long, default_value_t = 42, conflicts_with = "seeds")]
    pub seed: u64,
    /// A sweep over seeds `A..B` (inclusive, e.g. `1..20`): every seed's fleet and trace
    /// in every start week, summarised per policy (mean, spread, worst case).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Start weeks of a sweep, comma-separated: `winter` (2020-01-13), `spring`
    /// (2020-03-02), `summer` (2020-07-06), `autumn` (2020-10-12) or dates YYYY-MM-DD.
    #[arg(long)]
    pub seasons: Option<String>,
    /// Policies to compare, comma-separated (default, autoscaler, peaks, energy, carbon,
    /// balanced, balanced-shift).
    #[arg(
        long,
        default_value = "default,autoscaler,peaks,energy,carbon,balanced,balanced-shift"
    )]
    pub policies: String,
    /// The carbon forecast decisions read: `day-ahead` (the day before, repeated),
    /// `persistence` (now holds), `noisy:<error>` (truth × (1 + N(0, error))) or `perfect`
    /// (the future itself: an upper bound, not a deployment).
    #[arg(long, default_value = "day-ahead")]
    pub forecast: String,
    /// Seconds from waking a node until it takes pods (at idle power meanwhile).
    #[arg(long, default_value_t = 180.0)]
    pub boot_s: f64,
    /// Seconds a moved replica needs to serve again.
    #[arg(long, default_value_t = 30.0)]
    pub restart_s: f64,
    /// Energy of one move (pod start, image pull), joules.
    #[arg(long, default_value_t = 1000.0)]
    pub migration_j: f64,
    /// Fleet file (YAML) instead of the embedded fleet.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Trace file (CSV) to replay instead of the generated trace.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Directory for report.md, report.html, results.csv, results.json and the trace
    /// replayed (trace.csv).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `ecoplace simulate`.
pub fn run(args: SimulateArgs) -> Result<()> {
    if args.seeds.is_some() || args.seasons.is_some() {
        return run_sweep(&args);
    }
    let began = Instant::now();
    let mut scenario = scenario(&args)?;
    // The HTML report's hourly charts need each step's node power.
    scenario.settings.record_steps = args.out.is_some();
    let (mut report, runs) = simulate::simulate(&scenario)?;
    super::print_out(&output::table(&report))?;
    if let Some(dir) = &args.out {
        report.pareto = Some(pareto::sweep(&scenario)?);
        output::write_all(&report, &runs, &scenario.fleet, dir, &command_line())?;
        trace::write_csv(&scenario.trace, &dir.join("trace.csv"))?;
        super::print_out(&format!(
            "\nwrote {}/{{report.md,report.html,results.csv,results.json,trace.csv}}\n",
            dir.display()
        ))?;
    }
    super::print_out(&format!(
        "\nsimulated {} policies in {:.1} s\n",
        scenario.policies.len(),
        began.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

/// Runs a sweep (`--seeds`, `--seasons`) and prints (and writes) its summary.
fn run_sweep(args: &SimulateArgs) -> Result<()> {
    let seeds = match &args.seeds {
        Some(s) => parse_seeds(s)?,
        None => vec![args.seed],
    };
    let seasons = match &args.seasons {
        Some(s) => parse_seasons(s)?,
        None => vec![(args.start.clone(), parse_day(&args.start, "--start")?)],
    };
    let forecast: Forecast = args.forecast.parse()?;
    let total = seeds.len() * seasons.len();
    let mut done = 0;
    let result = sweep::run(
        &seasons,
        &seeds,
        |seed, start| scenario_at(args, seed, start),
        |season, seed, results| {
            done += 1;
            let line: Vec<String> = results
                .iter()
                .map(|(p, r)| format!("{p} {:.1} kg/{} viol", r.carbon_kg, r.slo_violations))
                .collect();
            tracing::info!(
                "sweep {done}/{total}: {season} seed {seed}: {}",
                line.join(", ")
            );
        },
    )?;
    let md = result.markdown(&command_line(), &forecast.describe(), total);
    super::print_out(&md)?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
        };
        write("sweep.md", &md)?;
        write("sweep.csv", &result.csv()?)?;
        write("sweep.json", &serde_json::to_string_pretty(&result)?)?;
        super::print_out(&format!(
            "
wrote {}/{{sweep.md,sweep.csv,sweep.json}}
",
            dir.display()
        ))?;
    }
    Ok(())
}

/// `A..B` (inclusive) or one seed.
fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let bad = || anyhow::anyhow!("--seeds: `{s}` is not `A..B` (e.g. 1..20) or one seed");
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a || b - a >= 10_000 {
        bail!("--seeds: `{s}` must go up (A ≤ B) and hold at most 10 000 seeds");
    }
    Ok((a..=b).collect())
}

/// The start week of each season name or date.
fn parse_seasons(s: &str) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let date = match part {
            "winter" => "2020-01-13",
            "spring" => "2020-03-02",
            "summer" => "2020-07-06",
            "autumn" => "2020-10-12",
            other => other,
        };
        out.push((part.to_string(), parse_day(date, "--seasons")?));
    }
    if out.is_empty() {
        bail!("--seasons: give at least one (winter, spring, summer, autumn or a date)");
    }
    Ok(out)
}

fn parse_day(s: &str, flag: &str) -> Result<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("{flag}: `{s}` is not a date YYYY-MM-DD (or winter, spring, summer, autumn)")
    })?;
    Ok(Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN)))
}

/// Builds the scenario the arguments describe.
pub fn scenario(args: &SimulateArgs) -> Result<Scenario> {
    scenario_at(args, args.seed, parse_day(&args.start, "--start")?)
}

/// The scenario of the arguments with this seed and start.
fn scenario_at(args: &SimulateArgs, seed: u64, start: DateTime<Utc>) -> Result<Scenario> {
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 366.0) {
        bail!("--days: {} must be in (0, 366]", args.days);
    }
    for (flag, v) in [
        ("--boot-s", args.boot_s),
        ("--restart-s", args.restart_s),
        ("--migration-j", args.migration_j),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{flag}: {v} must be a number ≥ 0");
        }
    }
    let policies = Policy::parse_list(&args.policies)?;
    let fleet = match &args.fleet {
        Some(p) => Fleet::from_file(p)?,
        None => Fleet::embedded(seed)?,
    };
    let mut settings = Settings::new(start, args.days);
    settings.forecast = args.forecast.parse()?;
    settings.forecast_seed = seed;
    settings.boot_s = args.boot_s;
    settings.restart_s = args.restart_s;
    settings.migration_j = args.migration_j;
    for c in &fleet.clusters {
        fleet
            .carbon
            .mean_over(&c.carbon_zone, settings.start, settings.end())
            .with_context(|| {
                format!(
                    "--start/--days: cluster `{}` has no carbon data for the whole period",
                    c.name
                )
            })?;
    }
    let (trace, origin) = match &args.trace {
        Some(p) => (trace::read_csv(p)?, p.display().to_string()),
        None => (
            trace::generate(
                &GeneratorConfig::for_fleet_cores(fleet.total_cores()),
                seed,
                start,
                args.days,
            ),
            format!("generated (seed {seed})"),
        ),
    };
    trace::validate(&trace, &fleet.regions())?;
    let mut trace = trace;
    trace.sort_by(|a, b| a.arrive.cmp(&b.arrive).then_with(|| a.name.cmp(&b.name)));
    Ok(Scenario {
        fleet,
        trace,
        trace_origin: origin,
        seed,
        settings,
        policies,
    })
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("ecoplace {}", args.join(" "))
}
