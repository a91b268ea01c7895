//! Plans the MILP bench instances once and prints status, gap, solve time, model size,
//! utilisation and the validator's verdict, for one or all cases.
//!
//! Run: `cargo run --release -p benches --bin placement-probe -- [CASE] [TIME_LIMIT_S] [greedy|highs]`.

use std::process::ExitCode;

use benches::placement::{at, milp_cases, report};
use optimizer::power::CurvePowerModel;
use optimizer::{Backend, SolveOptions, Weights, plan};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().map(String::as_str).unwrap_or("all");
    let mut options = SolveOptions::default();
    if let Some(t) = args.get(1) {
        match t.parse() {
            Ok(t) => options.time_limit_s = t,
            Err(e) => {
                eprintln!("time limit `{t}`: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.get(2).map(String::as_str) == Some("greedy") {
        options.backend = Backend::Greedy;
    }
    let power = CurvePowerModel::new();
    let mut failed = false;
    for (id, make) in milp_cases() {
        if case != "all" && case != id {
            continue;
        }
        let (ws, ts) = make();
        let began = std::time::Instant::now();
        let result = plan(&ws, &ts, &Weights::BALANCED, at(), &power, &options);
        eprintln!(
            "{id}: plan() wall time {:.3} s",
            began.elapsed().as_secs_f64()
        );
        match result {
            Ok(p) => failed |= report(id, &p, &ws, &ts, &power) > 0,
            Err(e) => {
                eprintln!("{id}: no plan: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
