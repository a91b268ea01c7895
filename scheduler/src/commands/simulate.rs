//! `ecoplace simulate`: compare placement policies on a simulated fleet (docs/simulate.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, TimeZone, Utc};

use crate::simulate::{
    self, Fleet, GeneratorConfig, Policy, Scenario, Settings, output, pareto, trace,
};

/// Arguments of `ecoplace simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Days to simulate.
    #[arg(long, default_value_t = 7.0)]
    pub days: f64,
    /// First day (UTC midnight), inside the 2020 carbon data for the embedded fleet.
    #[arg(long, default_value = "2020-03-02")]
    pub start: String,
    /// Seed of the embedded fleet and the generated trace.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Policies to compare, comma-separated (default, peaks, energy, carbon, balanced).
    #[arg(long, default_value = "default,peaks,energy,carbon,balanced")]
    pub policies: String,
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

/// Builds the scenario the arguments describe.
pub fn scenario(args: &SimulateArgs) -> Result<Scenario> {
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 366.0) {
        bail!("--days: {} must be in (0, 366]", args.days);
    }
    let day = NaiveDate::parse_from_str(&args.start, "%Y-%m-%d")
        .with_context(|| format!("--start: `{}` is not a date YYYY-MM-DD", args.start))?;
    let start = Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
    let policies = Policy::parse_list(&args.policies)?;
    let fleet = match &args.fleet {
        Some(p) => Fleet::from_file(p)?,
        None => Fleet::embedded(args.seed)?,
    };
    let settings = Settings::new(start, args.days);
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
            trace::generate(&GeneratorConfig::default(), args.seed, start, args.days),
            format!("generated (seed {})", args.seed),
        ),
    };
    trace::validate(&trace, &fleet.regions())?;
    let mut trace = trace;
    trace.sort_by(|a, b| a.arrive.cmp(&b.arrive).then_with(|| a.name.cmp(&b.name)));
    Ok(Scenario {
        fleet,
        trace,
        trace_origin: origin,
        seed: args.seed,
        settings,
        policies,
    })
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("ecoplace {}", args.join(" "))
}
