//! A sweep: the same policies over many scenarios (seeds × start weeks), summarised per
//! policy as mean, spread and worst case, with each policy's carbon saving against
//! `autoscaler` split into *less energy* and *cleaner energy*.
//!
//! Attribution: with energy `E`, carbon `C` and drawn intensity `I = C / E`, a policy's
//! saving against `autoscaler` (`a`) is `C_a − C_p = (E_a − E_p)·I_a + E_p·(I_a − I_p)`:
//! the first term is what using less energy saved at the autoscaler's intensity, the
//! second what drawing the energy it did use at a lower intensity saved. The two add up
//! to the saving exactly.
//!
//! The cleaner-energy term splits by hour `h` (energy shares `w_h = E_h / E`, hourly
//! intensities `I_h = C_h / E_h`) into *time* — `E_p·Σ_h (w_a,h − w_p,h)·I_a,h`, drawing
//! more in the hours that were clean for `autoscaler` — and *place* —
//! `E_p·Σ_h w_p,h·(I_a,h − I_p,h)`, drawing cleaner zones than `autoscaler` did in the same
//! hour; they add up to the cleaner-energy term exactly. The *batch* saving is the
//! difference of the carbon attributed to batch jobs (each node's power shared by its
//! pods' CPU use), shown beside the total.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::Policy;
use super::results::{PolicyResult, round};
use super::{Scenario, simulate};

/// One policy in one scenario of a sweep (one CSV row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The start week's label (`winter`, or the date).
    pub season: String,
    /// First instant.
    pub start: DateTime<Utc>,
    /// Seed of the fleet and trace.
    pub seed: u64,
    /// Policy name.
    pub policy: String,
    /// Energy, kWh.
    pub energy_kwh: f64,
    /// Carbon, kgCO2e.
    pub carbon_kg: f64,
    /// Drawn intensity, gCO2e/kWh.
    pub g_per_kwh: f64,
    /// SLO violations (replica-steps pending or over the SLO but for new services'
    /// rollouts, plus deadline misses).
    pub slo_violations: u64,
    /// New services' replica-steps waiting for capacity within their rollout (600 s).
    pub rollout_waits: u64,
    /// Batch deadline misses (in `slo_violations`).
    pub deadline_misses: u64,
    /// Pods moved.
    pub migrations: u64,
    /// Carbon change against `autoscaler`, percent (negative = less).
    pub carbon_vs_autoscaler_pct: Option<f64>,
    /// Energy change against `autoscaler`, percent.
    pub energy_vs_autoscaler_pct: Option<f64>,
    /// Carbon change against `default`, percent.
    pub carbon_vs_default_pct: Option<f64>,
    /// Of the carbon saved against `autoscaler`, kg saved by using less energy.
    pub saved_by_less_energy_kg: Option<f64>,
    /// Of the carbon saved against `autoscaler`, kg saved by drawing cleaner energy.
    pub saved_by_cleaner_energy_kg: Option<f64>,
    /// Of the cleaner-energy saving, kg from drawing in cleaner hours (time).
    pub saved_by_time_kg: Option<f64>,
    /// Of the cleaner-energy saving, kg from drawing cleaner zones in the same hour (place).
    pub saved_by_place_kg: Option<f64>,
    /// Carbon attributed to batch jobs, kg.
    pub batch_carbon_kg: f64,
    /// Of the carbon saved against `autoscaler`, kg saved on batch jobs' share.
    pub saved_on_batch_kg: Option<f64>,
    /// Carbon above `peaks` in the same scenario, kg (negative = less).
    pub carbon_vs_peaks_kg: Option<f64>,
}

/// Mean, standard deviation, least and greatest of one figure over a sweep's scenarios.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub sd: f64,
    /// Least value.
    pub min: f64,
    /// Greatest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Spread {
            mean,
            sd: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One policy over the whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySweep {
    /// Scenarios run.
    pub runs: usize,
    /// Energy, kWh.
    pub energy_kwh: Spread,
    /// Carbon, kgCO2e.
    pub carbon_kg: Spread,
    /// Drawn intensity, gCO2e/kWh.
    pub g_per_kwh: Spread,
    /// SLO violations per run.
    pub slo_violations: Spread,
    /// New services' rollout waits per run (replica-steps, not violations).
    pub rollout_waits: Spread,
    /// Deadline misses per run.
    pub deadline_misses: Spread,
    /// Migrations per run.
    pub migrations: Spread,
    /// Carbon change against `autoscaler`, percent (max = worst run).
    pub carbon_vs_autoscaler_pct: Option<Spread>,
    /// Energy change against `autoscaler`, percent.
    pub energy_vs_autoscaler_pct: Option<Spread>,
    /// Carbon change against `default`, percent.
    pub carbon_vs_default_pct: Option<Spread>,
    /// Carbon saved against `autoscaler` by using less energy, kg per run.
    pub saved_by_less_energy_kg: Option<Spread>,
    /// Carbon saved against `autoscaler` by drawing cleaner energy, kg per run.
    pub saved_by_cleaner_energy_kg: Option<Spread>,
    /// Of that, by drawing in cleaner hours, kg per run.
    pub saved_by_time_kg: Option<Spread>,
    /// Of that, by drawing cleaner zones in the same hour, kg per run.
    pub saved_by_place_kg: Option<Spread>,
    /// Carbon attributed to batch jobs, kg per run.
    pub batch_carbon_kg: Spread,
    /// Carbon saved against `autoscaler` on batch jobs' share, kg per run.
    pub saved_on_batch_kg: Option<Spread>,
    /// Runs with more carbon than `autoscaler`.
    pub runs_above_autoscaler: usize,
    /// Runs with more carbon than `peaks`.
    pub runs_above_peaks: usize,
    /// Runs with any SLO violation.
    pub runs_with_violations: usize,
}

/// A sweep's rows and per-policy summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// Policy names in report order.
    pub order: Vec<String>,
    /// Per policy.
    pub policies: BTreeMap<String, PolicySweep>,
    /// Every (scenario, policy).
    pub rows: Vec<SweepRow>,
    /// Wall-clock seconds the sweep took.
    pub seconds: f64,
}

/// Runs every scenario `make` gives for each (season label, start) × seed and summarises.
/// `progress` hears each finished scenario.
pub fn run(
    seasons: &[(String, DateTime<Utc>)],
    seeds: &[u64],
    make: impl Fn(u64, DateTime<Utc>) -> Result<Scenario>,
    mut progress: impl FnMut(&str, u64, &BTreeMap<String, PolicyResult>),
) -> Result<Sweep> {
    let began = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut order = Vec::new();
    for (label, start) in seasons {
        for &seed in seeds {
            let scenario = make(seed, *start)?;
            let (report, _) = simulate(&scenario)?;
            order.clone_from(&report.order);
            progress(label, seed, &report.policies);
            rows.extend(rows_of(
                label,
                *start,
                seed,
                &report.order,
                &report.policies,
            ));
        }
    }
    let policies = order
        .iter()
        .map(|p| (p.clone(), summarise(&rows, p)))
        .collect();
    Ok(Sweep {
        order,
        policies,
        rows,
        seconds: began.elapsed().as_secs_f64(),
    })
}

fn rows_of(
    season: &str,
    start: DateTime<Utc>,
    seed: u64,
    order: &[String],
    results: &BTreeMap<String, PolicyResult>,
) -> Vec<SweepRow> {
    let autoscaler = results.get(Policy::Autoscaler.name());
    let peaks = results.get(Policy::Peaks.name());
    order
        .iter()
        .filter_map(|name| results.get(name).map(|r| (name, r)))
        .map(|(name, r)| {
            let split = autoscaler.map(|a| attribute(a, r));
            SweepRow {
                season: season.to_string(),
                start,
                seed,
                policy: name.clone(),
                energy_kwh: r.energy_kwh,
                carbon_kg: r.carbon_kg,
                g_per_kwh: r.mean_intensity_g_per_kwh,
                slo_violations: r.slo_violations,
                rollout_waits: r.replica_steps_rollout,
                deadline_misses: r.batch_deadline_misses,
                migrations: r.migrations,
                carbon_vs_autoscaler_pct: r.carbon_vs_autoscaler_pct,
                energy_vs_autoscaler_pct: r.energy_vs_autoscaler_pct,
                carbon_vs_default_pct: r.carbon_change_pct,
                saved_by_less_energy_kg: split.map(|s| s.less_energy),
                saved_by_cleaner_energy_kg: split.map(|s| s.time + s.place),
                saved_by_time_kg: split.map(|s| s.time),
                saved_by_place_kg: split.map(|s| s.place),
                batch_carbon_kg: r.batch_carbon_kg,
                saved_on_batch_kg: split.map(|s| s.batch),
                carbon_vs_peaks_kg: peaks.map(|p| round(r.carbon_kg - p.carbon_kg, 3)),
            }
        })
        .collect()
}

/// Where a policy's carbon saving against a base comes from, kg (see the module docs):
/// `less_energy + time + place` is the whole saving; `batch` is the part on batch jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribution {
    /// Using less energy, at the base's intensity.
    pub less_energy: f64,
    /// Drawing more of its energy in the hours that were clean for the base.
    pub time: f64,
    /// Drawing cleaner zones than the base in the same hour.
    pub place: f64,
    /// The base's batch carbon less the policy's.
    pub batch: f64,
}

/// Where `r`'s carbon saving against `base` comes from (see the module docs).
pub fn attribute(base: &PolicyResult, r: &PolicyResult) -> Attribution {
    let intensity = |e: f64, c: f64| if e > 0.0 { c / e } else { 0.0 };
    let ia = intensity(base.energy_kwh, base.carbon_kg);
    let less = (base.energy_kwh - r.energy_kwh) * ia;
    let (ea, ep) = (
        base.by_hour.iter().map(|h| h.0).sum::<f64>(),
        r.by_hour.iter().map(|h| h.0).sum::<f64>(),
    );
    let hours = base.by_hour.len().max(r.by_hour.len());
    let (mut time, mut place) = (0.0, 0.0);
    for h in 0..hours {
        let (e_a, c_a) = base.by_hour.get(h).copied().unwrap_or((0.0, 0.0));
        let (e_p, c_p) = r.by_hour.get(h).copied().unwrap_or((0.0, 0.0));
        let i_a = if e_a > 0.0 { c_a / e_a } else { ia };
        let w_a = if ea > 0.0 { e_a / ea } else { 0.0 };
        let w_p = if ep > 0.0 { e_p / ep } else { 0.0 };
        time += (w_a - w_p) * i_a;
        if e_p > 0.0 {
            place += w_p * (i_a - c_p / e_p);
        }
    }
    // The hourly sums carry the unrounded totals; scale them onto the reported energy so
    // that the parts add up to the reported saving.
    let cleaner = r.energy_kwh * (ia - intensity(r.energy_kwh, r.carbon_kg));
    let (time, place) = if (time + place).abs() > 1e-12 {
        let k = cleaner / (time + place);
        (time * k, place * k)
    } else {
        (0.0, cleaner)
    };
    Attribution {
        less_energy: round(less, 3),
        time: round(time, 3),
        place: round(place, 3),
        batch: round(base.batch_carbon_kg - r.batch_carbon_kg, 3),
    }
}

fn summarise(rows: &[SweepRow], policy: &str) -> PolicySweep {
    let mine: Vec<&SweepRow> = rows.iter().filter(|r| r.policy == policy).collect();
    let all =
        |f: &dyn Fn(&SweepRow) -> f64| Spread::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
    let some = |f: &dyn Fn(&SweepRow) -> Option<f64>| {
        let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
        (!v.is_empty()).then(|| Spread::of(&v))
    };
    PolicySweep {
        runs: mine.len(),
        energy_kwh: all(&|r| r.energy_kwh),
        carbon_kg: all(&|r| r.carbon_kg),
        g_per_kwh: all(&|r| r.g_per_kwh),
        slo_violations: all(&|r| r.slo_violations as f64),
        rollout_waits: all(&|r| r.rollout_waits as f64),
        deadline_misses: all(&|r| r.deadline_misses as f64),
        migrations: all(&|r| r.migrations as f64),
        carbon_vs_autoscaler_pct: some(&|r| r.carbon_vs_autoscaler_pct),
        energy_vs_autoscaler_pct: some(&|r| r.energy_vs_autoscaler_pct),
        carbon_vs_default_pct: some(&|r| r.carbon_vs_default_pct),
        saved_by_less_energy_kg: some(&|r| r.saved_by_less_energy_kg),
        saved_by_cleaner_energy_kg: some(&|r| r.saved_by_cleaner_energy_kg),
        saved_by_time_kg: some(&|r| r.saved_by_time_kg),
        saved_by_place_kg: some(&|r| r.saved_by_place_kg),
        batch_carbon_kg: all(&|r| r.batch_carbon_kg),
        saved_on_batch_kg: some(&|r| r.saved_on_batch_kg),
        runs_above_autoscaler: mine
            .iter()
            .filter(|r| r.carbon_vs_autoscaler_pct.is_some_and(|c| c > 0.0))
            .count(),
        runs_above_peaks: mine
            .iter()
            .filter(|r| r.carbon_vs_peaks_kg.is_some_and(|c| c > 0.0))
            .count(),
        runs_with_violations: mine.iter().filter(|r| r.slo_violations > 0).count(),
    }
}

impl Sweep {
    /// The summary as Markdown: one table of outcomes, one of the attribution.
    pub fn markdown(&self, command: &str, forecast: &str, scenarios: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# ecoplace simulate: sweep\n");
        let _ = writeln!(out, "Command: `{command}`\n");
        let _ = writeln!(
            out,
            "{scenarios} scenarios × {} policies in {:.0} s. Carbon forecast the decisions read: {forecast}.\n",
            self.order.len(),
            self.seconds
        );
        let _ = writeln!(
            out,
            "Each cell is mean ± standard deviation over the scenarios, with the range [least … greatest]; \
             for a change in percent (negative = less) the greatest value is the worst run. \
             SLO violations are service replica-steps over the latency SLO or wanted but not serving, and \
             batch deadline misses; *rollout waits* (not violations) are a new service's replica-steps \
             waiting for capacity in the first 600 s after its creation (a Deployment's default \
             `progressDeadlineSeconds`).\n"
        );
        let _ = writeln!(
            out,
            "| policy | carbon vs autoscaler % | energy vs autoscaler % | carbon vs default % | g/kWh drawn | SLO violations | runs with violations | rollout waits | deadline misses (worst) | migrations | runs above autoscaler / peaks |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for name in &self.order {
            let Some(p) = self.policies.get(name) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {}/{} | {} | {:.0} | {} | {} / {} |",
                opt(p.carbon_vs_autoscaler_pct, 1),
                opt(p.energy_vs_autoscaler_pct, 1),
                opt(p.carbon_vs_default_pct, 1),
                cell(&p.g_per_kwh, 1),
                cell(&p.slo_violations, 0),
                p.runs_with_violations,
                p.runs,
                cell(&p.rollout_waits, 0),
                p.deadline_misses.max,
                cell(&p.migrations, 0),
                p.runs_above_autoscaler,
                p.runs_above_peaks,
            );
        }
        let _ = writeln!(
            out,
            "\n## Where the carbon saving against `autoscaler` comes from\n\n\
             Saving = (E_autoscaler − E)·I_autoscaler (*less energy*) + E·(I_autoscaler − I) (*cleaner energy*); \
             the cleaner energy splits by hour into *time* (more energy in the hours that were clean for autoscaler) \
             and *place* (cleaner zones than autoscaler in the same hour). *Batch* is the saving on the carbon \
             attributed to batch jobs (each node's power shared by its pods' CPU use), part of the total. \
             kgCO2e per scenario, mean ± sd [range]; less energy + time + place = saved.\n"
        );
        let _ = writeln!(
            out,
            "| policy | carbon kg | saved kg | by less energy kg | by time kg | by place kg | cleaner share % | batch carbon kg | saved on batch kg | batch share of the saving % |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for name in &self.order {
            let Some(p) = self.policies.get(name) else {
                continue;
            };
            let (Some(less), Some(time), Some(place), Some(batch)) = (
                p.saved_by_less_energy_kg,
                p.saved_by_time_kg,
                p.saved_by_place_kg,
                p.saved_on_batch_kg,
            ) else {
                continue;
            };
            let saved = less.mean + time.mean + place.mean;
            let share = |part: f64| {
                if saved.abs() > 1e-9 {
                    format!("{:.0}", 100.0 * part / saved).replace('-', "−")
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&p.carbon_kg, 2),
                format!("{saved:.2}").replace('-', "−"),
                cell(&less, 2),
                cell(&time, 2),
                cell(&place, 2),
                share(time.mean + place.mean),
                cell(&p.batch_carbon_kg, 2),
                cell(&batch, 2),
                share(batch.mean),
            );
        }
        out
    }

    /// Every row as CSV.
    pub fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &self.rows {
            w.serialize(r)?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
        Ok(String::from_utf8(bytes)?)
    }
}

/// `mean ± sd [min … max]`, negatives with the typographic minus the other tables use.
fn cell(s: &Spread, d: usize) -> String {
    format!(
        "{:.d$} ± {:.d$} [{:.d$} … {:.d$}]",
        s.mean, s.sd, s.min, s.max
    )
    .replace('-', "−")
}

fn opt(s: Option<Spread>, d: usize) -> String {
    s.map_or_else(|| "–".into(), |s| cell(&s, d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A result from hourly (kWh, kg) and its batch carbon.
    fn result(by_hour: &[(f64, f64)], batch_kg: f64) -> PolicyResult {
        let mut r = PolicyResult::from_counters(&Default::default(), &[], 1.0);
        r.energy_kwh = by_hour.iter().map(|h| h.0).sum();
        r.carbon_kg = by_hour.iter().map(|h| h.1).sum();
        r.by_hour = by_hour.to_vec();
        r.batch_carbon_kg = batch_kg;
        r
    }

    #[test]
    fn attribution_adds_up_to_the_saving() {
        // Base: 50 kWh at 400 g then 50 at 200 g (30 kg). Policy: the same hours' energy
        // moved to the clean hour and 20 kWh less (80 kWh, all in hour 2, at 150 g there:
        // a cleaner zone too): 12 kg.
        let a = attribute(
            &result(&[(50.0, 20.0), (50.0, 10.0)], 9.0),
            &result(&[(0.0, 0.0), (80.0, 12.0)], 4.0),
        );
        // Less energy: 20 kWh × 0.3 kg/kWh = 6 kg. Time: 80 × (0.5·0.4 + 0.5·0.2 − 0.2) = 8.
        // Place: 80 × (0.2 − 0.15) = 4. Batch: 9 − 4 = 5.
        assert!((a.less_energy - 6.0).abs() < 1e-9, "{a:?}");
        assert!((a.time - 8.0).abs() < 1e-9, "{a:?}");
        assert!((a.place - 4.0).abs() < 1e-9, "{a:?}");
        assert!((a.less_energy + a.time + a.place - 18.0).abs() < 1e-9);
        assert!((a.batch - 5.0).abs() < 1e-9);
        // Same hours, same energy, one cleaner zone: all place.
        let a = attribute(
            &result(&[(10.0, 4.0), (10.0, 4.0)], 0.0),
            &result(&[(10.0, 2.0), (10.0, 2.0)], 0.0),
        );
        assert_eq!((a.less_energy, a.time, a.place), (0.0, 0.0, 4.0));
    }

    #[test]
    fn spreads_give_mean_sd_and_range() {
        let s = Spread::of(&[1.0, 3.0]);
        assert_eq!((s.mean, s.sd, s.min, s.max), (2.0, 1.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[]), Spread::default());
    }
}
