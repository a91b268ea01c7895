//! What decisions may know of the grid: a carbon *forecast* built from the curves the run
//! is accounted with, never the future itself (unless `perfect` is asked for).
//!
//! Every model knows the intensity now (real-time data, as Electricity Maps or WattTime
//! give); they differ in what they say of the hours ahead.

use std::str::FromStr;

use anyhow::{Result, bail};
use chrono::{DateTime, Duration, Timelike, Utc};
use optimizer::CarbonOutlook;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fleet::Fleet;

/// How the decisions' carbon forecast is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecast {
    /// The future exactly as it will be accounted (an upper bound, not a deployment).
    Perfect,
    /// Persistence: every future hour at the intensity now.
    Persistence,
    /// Day-ahead naive: each future hour at the intensity of the same hour one day before
    /// it was forecast (the previous day's curve, repeated).
    DayAhead,
    /// The truth with a seeded relative error of this standard deviation (0.1 = 10 %),
    /// drawn per zone and hour.
    Noisy(f64),
}

impl Forecast {
    /// The model a run uses unless told otherwise: the one any deployment can build from
    /// the last day of data.
    pub const DEFAULT: Forecast = Forecast::DayAhead;

    /// The name used on the command line and in reports (`noisy:0.1`).
    pub fn name(&self) -> String {
        match self {
            Forecast::Perfect => "perfect".into(),
            Forecast::Persistence => "persistence".into(),
            Forecast::DayAhead => "day-ahead".into(),
            Forecast::Noisy(e) => format!("noisy:{e}"),
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            Forecast::Perfect => {
                "perfect: decisions see the future intensity they are accounted with (an upper bound)".into()
            }
            Forecast::Persistence => {
                "persistence: decisions know the intensity now and assume it holds".into()
            }
            Forecast::DayAhead => {
                "day-ahead: decisions know the intensity now; each future hour is forecast at the same hour of the day before".into()
            }
            Forecast::Noisy(e) => format!(
                "noisy: decisions know the intensity now; each future hour is the truth × (1 + ε), ε ~ N(0, {e}) per zone and hour"
            ),
        }
    }

    /// Each cluster's outlook at `t`: the true intensity now and this model's hourly
    /// forecast over the next `hours`; `seed` drives the `noisy` errors.
    pub fn outlooks(
        &self,
        fleet: &Fleet,
        t: DateTime<Utc>,
        hours: i64,
        seed: u64,
    ) -> Result<Vec<CarbonOutlook>> {
        let mut out = Vec::with_capacity(fleet.clusters.len());
        for c in &fleet.clusters {
            let zone = &c.carbon_zone;
            let now = fleet.carbon.intensity_at(zone, t)?;
            let hour0 = t
                .with_minute(0)
                .and_then(|h| h.with_second(0))
                .and_then(|h| h.with_nanosecond(0))
                .unwrap_or(t);
            let mut forecast = Vec::with_capacity(hours.max(0) as usize);
            for h in 1..=hours {
                let at = hour0 + Duration::hours(h);
                let value = match self {
                    // Past the end of the data the truth is unknown: the forecast holds
                    // `now` there rather than failing the run.
                    Forecast::Perfect => fleet.carbon.intensity_at(zone, at).unwrap_or(now),
                    Forecast::Persistence => now,
                    Forecast::DayAhead => {
                        // The same hour of the last full day known at `t`.
                        let days_back = (at - hour0).num_hours() / 24 + 1;
                        fleet
                            .carbon
                            .intensity_at(zone, at - Duration::days(days_back))
                            .unwrap_or(now)
                    }
                    Forecast::Noisy(sd) => {
                        let truth = fleet.carbon.intensity_at(zone, at).unwrap_or(now);
                        (truth * (1.0 + sd * noise(seed, zone, at, t))).max(0.0)
                    }
                };
                forecast.push((at, value));
            }
            // The current hour is known: the outlook holds `now` until the next hour.
            out.push(CarbonOutlook {
                now_g_per_kwh: now,
                forecast,
            });
        }
        Ok(out)
    }
}

impl FromStr for Forecast {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "perfect" => Ok(Forecast::Perfect),
            "persistence" => Ok(Forecast::Persistence),
            "day-ahead" => Ok(Forecast::DayAhead),
            other => {
                if let Some(e) = other.strip_prefix("noisy:") {
                    let e: f64 = e.parse().map_err(|_| {
                        anyhow::anyhow!(
                            "--forecast: `{other}`: the error after `noisy:` is not a number"
                        )
                    })?;
                    if !(e.is_finite() && (0.0..=2.0).contains(&e)) {
                        bail!("--forecast: `{other}`: the error must be in 0..=2 (0.1 = 10 %)");
                    }
                    return Ok(Forecast::Noisy(e));
                }
                bail!(
                    "--forecast: unknown model `{other}` (known: perfect, persistence, day-ahead, noisy:<error>, e.g. noisy:0.1)"
                )
            }
        }
    }
}

/// A standard normal draw fixed by (seed, zone, forecast hour, issue hour): the same
/// forecast is issued again within an hour, and a later issue errs differently.
fn noise(seed: u64, zone: &str, at: DateTime<Utc>, issued: DateTime<Utc>) -> f64 {
    let mut key = seed ^ 0x0f0c_a57e;
    for b in zone.bytes() {
        key = key.rotate_left(7) ^ u64::from(b);
    }
    key ^= (at.timestamp() as u64 / 3600).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    key ^= (issued.timestamp() as u64 / 3600).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn models_parse_and_bad_names_are_named() {
        assert_eq!("day-ahead".parse::<Forecast>().unwrap(), Forecast::DayAhead);
        assert_eq!(
            "noisy:0.15".parse::<Forecast>().unwrap(),
            Forecast::Noisy(0.15)
        );
        let e = "crystal-ball".parse::<Forecast>().unwrap_err().to_string();
        assert!(e.contains("crystal-ball") && e.contains("day-ahead"), "{e}");
        let e = "noisy:x".parse::<Forecast>().unwrap_err().to_string();
        assert!(e.contains("noisy:x"), "{e}");
    }

    #[test]
    fn only_perfect_sees_the_future_and_day_ahead_repeats_yesterday() {
        let fleet = Fleet::embedded(1).unwrap();
        let t = Utc.with_ymd_and_hms(2020, 3, 4, 12, 30, 0).unwrap();
        let zone = fleet.clusters[0].carbon_zone.clone();
        let truth = |at| fleet.carbon.intensity_at(&zone, at).unwrap();
        let get = |f: Forecast| f.outlooks(&fleet, t, 30, 7).unwrap().remove(0);
        let perfect = get(Forecast::Perfect);
        let day_ahead = get(Forecast::DayAhead);
        let persistence = get(Forecast::Persistence);
        assert_eq!(perfect.now_g_per_kwh, truth(t));
        assert_eq!(day_ahead.now_g_per_kwh, truth(t));
        for ((at, p), (_, d)) in perfect.forecast.iter().zip(&day_ahead.forecast) {
            assert_eq!(*p, truth(*at));
            let hour0 = Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0).unwrap();
            let back = (*at - hour0).num_hours() / 24 + 1;
            assert_eq!(*d, truth(*at - Duration::days(back)));
            assert!(*at - Duration::days(back) <= t, "day-ahead used the future");
        }
        assert!(persistence.forecast.iter().all(|(_, v)| *v == truth(t)));
        let noisy = get(Forecast::Noisy(0.2));
        assert_eq!(noisy, get(Forecast::Noisy(0.2)), "seeded");
        assert!(
            noisy
                .forecast
                .iter()
                .zip(&perfect.forecast)
                .any(|(n, p)| n.1 != p.1)
        );
    }
}
