#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap()
}

fn hours(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}

fn pod(annotations: &[(&str, &str)]) -> GatedPod {
    GatedPod {
        namespace: "batch".into(),
        name: "report-7x2".into(),
        uid: "uid-1".into(),
        created: t0(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cpu_cores: 2.0,
    }
}

fn settings() -> HoldSettings {
    HoldSettings {
        default_duration: Duration::hours(1),
        watts_per_core: 10.0,
        min_saving: 0.05,
    }
}

/// An hourly outlook from `t0`.
fn hourly(zone: &str, values: &[f64]) -> ZoneOutlook {
    (
        zone.into(),
        Ok(CarbonOutlook {
            now_g_per_kwh: values[0],
            forecast: values
                .iter()
                .enumerate()
                .map(|(h, v)| (hours(h as i64), *v))
                .collect(),
        }),
    )
}

fn budget() -> SlotBudget {
    SlotBudget::new(Duration::minutes(15), 8.0)
}

#[test]
fn windows_come_from_a_deadline_or_a_delay_and_the_earlier_wins() {
    let w = pod(&[
        (DEADLINE, "2026-12-04T06:00:00+01:00"),
        (EXPECTED_DURATION, "90m"),
    ])
    .window(Duration::hours(1))
    .unwrap();
    assert_eq!((w.deadline, w.duration), (hours(5), Duration::minutes(90)));
    assert_eq!(w.latest_start(), hours(5) - Duration::minutes(90));
    let w = pod(&[(MAX_DELAY, "1h30m")])
        .window(Duration::hours(1))
        .unwrap();
    assert_eq!(
        (w.deadline, w.duration),
        (t0() + Duration::minutes(90), Duration::hours(1))
    );
    let w = pod(&[(MAX_DELAY, "PT8H"), (DEADLINE, "2026-12-04T03:00:00Z")])
        .window(Duration::hours(1))
        .unwrap();
    assert_eq!(w.deadline, hours(3));
}

#[test]
fn malformed_annotations_name_the_key_and_the_value() {
    let cases = [
        (
            pod(&[]),
            "neither ecoplace.io/deadline nor ecoplace.io/max-delay is set",
        ),
        (
            pod(&[(DEADLINE, "tomorrow")]),
            "annotation ecoplace.io/deadline=\"tomorrow\": not an RFC 3339 time",
        ),
        (
            pod(&[(MAX_DELAY, "-2h")]),
            "annotation ecoplace.io/max-delay=\"-2h\": must be positive",
        ),
        (
            pod(&[(MAX_DELAY, "6h"), (EXPECTED_DURATION, "six hours")]),
            "annotation ecoplace.io/expected-duration=\"six hours\": not a duration like 6h",
        ),
    ];
    for (p, want) in cases {
        let e = p.window(Duration::hours(1)).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
        let plan = p.plan(
            t0(),
            &[hourly("DE", &[300.0, 100.0])],
            &settings(),
            &mut budget(),
        );
        assert_eq!((plan.release_at, plan.reason), (t0(), Release::Malformed));
        assert!(plan.note.contains(want), "{}", plan.note);
        assert_eq!(plan.latest_start, t0());
    }
}

#[test]
fn holds_for_the_cleanest_zone_and_hour_and_says_why() {
    let p = pod(&[(MAX_DELAY, "8h"), (EXPECTED_DURATION, "1h")]);
    let zones = [
        hourly(
            "DE",
            &[400.0, 380.0, 300.0, 250.0, 260.0, 390.0, 400.0, 410.0],
        ),
        hourly("FR", &[90.0, 80.0, 60.0, 40.0, 70.0, 90.0, 95.0, 99.0]),
    ];
    let mut b = budget();
    let plan = p.plan(t0(), &zones, &settings(), &mut b);
    assert_eq!(plan.release_at, hours(3));
    assert_eq!(
        (plan.reason, plan.zone.as_deref()),
        (Release::Window, Some("FR"))
    );
    // 2 cores × 10 W for an hour: 20 Wh at 90 now vs 40 then.
    assert!(
        (plan.saved_g - 0.02 * (90.0 - 40.0)).abs() < 1e-9,
        "{}",
        plan.saved_g
    );
    assert!(
        plan.note
            .starts_with("held until 2026-12-04 03:00 UTC: forecast 40 g/kWh vs 90 now"),
        "{}",
        plan.note
    );
    assert_eq!(b.used("FR", hours(3)), 2.0);
    assert_eq!(
        plan.annotations(),
        BTreeMap::from([
            (RELEASE_AT.to_string(), "2026-12-04T03:00:00Z".to_string()),
            (WINDOW_ZONE.to_string(), "FR".to_string()),
            (SAVED_G.to_string(), "1.0".to_string()),
        ])
    );
    unbook(&plan, &mut b);
    assert_eq!(b.used("FR", hours(3)), 0.0);
}

#[test]
fn missing_forecasts_or_zones_release_at_once_naming_why() {
    let p = pod(&[(MAX_DELAY, "8h")]);
    let zones = [
        ("DE".to_string(), Err("stale: no data for 2 h".to_string())),
        (
            "FR".to_string(),
            Ok(CarbonOutlook {
                now_g_per_kwh: 60.0,
                forecast: Vec::new(),
            }),
        ),
    ];
    let plan = p.plan(t0(), &zones, &settings(), &mut budget());
    assert_eq!((plan.release_at, plan.reason), (t0(), Release::NoForecast));
    assert!(
        plan.note
            .contains("DE: stale: no data for 2 h; FR: the forecast ends now"),
        "{}",
        plan.note
    );
    assert!(plan.reason.is_warning());
    let plan = p.plan(t0(), &[], &settings(), &mut budget());
    assert_eq!((plan.release_at, plan.reason), (t0(), Release::NoZone));
}

#[test]
fn a_near_deadline_a_flat_curve_or_a_small_saving_release_at_once() {
    let curve = [hourly("DE", &[300.0, 290.0, 100.0, 100.0])];
    // 10 minutes of room: waiting them out saves 0.6 %, not worth it.
    let near = pod(&[(MAX_DELAY, "70m"), (EXPECTED_DURATION, "1h")]);
    assert_eq!(
        near.plan(t0(), &curve, &settings(), &mut budget()).reason,
        Release::SmallSaving
    );
    let late = pod(&[(MAX_DELAY, "50m"), (EXPECTED_DURATION, "1h")]);
    let plan = late.plan(t0(), &curve, &settings(), &mut budget());
    assert_eq!(
        (plan.release_at, plan.reason),
        (t0(), Release::DeadlineNear)
    );
    let flat = [hourly("DE", &[300.0, 300.0, 300.0, 300.0])];
    let p = pod(&[(MAX_DELAY, "4h")]);
    assert_eq!(
        p.plan(t0(), &flat, &settings(), &mut budget()).reason,
        Release::NowIsCleanest
    );
    let slight = [hourly("DE", &[300.0, 300.0, 290.0, 300.0])];
    let plan = p.plan(t0(), &slight, &settings(), &mut budget());
    assert_eq!((plan.release_at, plan.reason), (t0(), Release::SmallSaving));
    assert!(plan.note.contains("saves only 3.3 %"), "{}", plan.note);
}

#[test]
fn the_budget_spreads_a_herd_and_a_full_budget_releases_at_once() {
    let zones = [hourly("DE", &[400.0, 380.0, 100.0, 200.0, 390.0, 400.0])];
    let mut b = SlotBudget::new(Duration::hours(1), 4.0);
    let starts: Vec<(DateTime<Utc>, Release)> = (0..4)
        .map(|_| {
            let p = pod(&[(MAX_DELAY, "5h"), (EXPECTED_DURATION, "1h")]);
            let plan = p.plan(t0(), &zones, &settings(), &mut b);
            (plan.release_at, plan.reason)
        })
        .collect();
    assert_eq!(
        starts,
        [
            (hours(2), Release::Window),
            (hours(2), Release::Window),
            (hours(3), Release::Window),
            (hours(3), Release::Window),
        ]
    );
    // Hours 2 and 3 are booked: the fifth could only gain 5 % at hour 1.
    let p = pod(&[(MAX_DELAY, "4h"), (EXPECTED_DURATION, "1h")]);
    let plan = p.plan(t0(), &zones, &settings(), &mut b);
    assert_eq!((plan.release_at, plan.reason), (t0(), Release::SmallSaving));
    // Two-hour runs of 2 cores, 2 cores per slot: the second finds no room at all.
    let zones = [hourly("DE", &[400.0, 100.0, 100.0, 100.0])];
    let mut b = SlotBudget::new(Duration::hours(1), 2.0);
    let p = pod(&[(MAX_DELAY, "3h"), (EXPECTED_DURATION, "2h")]);
    assert_eq!(
        p.plan(t0(), &zones, &settings(), &mut b).release_at,
        hours(1)
    );
    let plan = p.plan(t0(), &zones, &settings(), &mut b);
    assert_eq!((plan.release_at, plan.reason), (t0(), Release::BudgetFull));
}

#[test]
fn a_recorded_hold_survives_a_restart_and_books_its_slots() {
    let p = pod(&[(MAX_DELAY, "8h")]);
    let zones = [hourly(
        "FR",
        &[90.0, 80.0, 60.0, 40.0, 70.0, 90.0, 95.0, 99.0],
    )];
    let plan = p.plan(t0(), &zones, &settings(), &mut budget());
    let mut restarted = p.clone();
    restarted.annotations.extend(plan.annotations());
    let mut b = budget();
    let again = restarted
        .recorded(t0() + Duration::minutes(30), &settings(), &mut b)
        .unwrap();
    assert_eq!(
        (again.release_at, again.zone.as_deref()),
        (hours(3), Some("FR"))
    );
    assert!((again.saved_g - plan.saved_g).abs() < 0.05);
    assert_eq!(b.used("FR", hours(3)), 2.0);
    // A recorded release past the latest start (the deadline was moved) is clamped to it.
    restarted.annotations.insert(MAX_DELAY.into(), "2h".into());
    let clamped = restarted
        .recorded(t0(), &settings(), &mut budget())
        .unwrap();
    assert_eq!(clamped.release_at, hours(1));
    // Nothing recorded, or annotations that no longer parse: plan afresh.
    assert!(p.recorded(t0(), &settings(), &mut budget()).is_none());
    restarted
        .annotations
        .insert(MAX_DELAY.into(), "soon".into());
    assert!(
        restarted
            .recorded(t0(), &settings(), &mut budget())
            .is_none()
    );
}
