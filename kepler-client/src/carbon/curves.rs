//! In-memory carbon-intensity curves per zone and their time-based lookups.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::{CarbonError, CarbonIntensitySource, IntensityPoint};

/// One validated piecewise-constant interval `[start, end)`, `end > start`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Seg {
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
    pub(super) g: f64,
}

impl Seg {
    fn to_point(self) -> IntensityPoint {
        IntensityPoint {
            start: self.start,
            duration_s: (self.end - self.start).num_seconds(),
            g_per_kwh: self.g,
        }
    }
}

/// The curve of one zone.
#[derive(Debug, Clone, PartialEq)]
enum Curve {
    /// The same intensity at every time.
    Constant(f64),
    /// Non-empty, sorted by start, non-overlapping; gaps are allowed.
    Series(Vec<Seg>),
}

/// The embedded hourly 2020 curves: zone, file name, contents.
const EMBEDDED_2020: [(&str, &str, &str); 3] = [
    (
        "DE",
        "de_2020_hourly.csv",
        include_str!("../../data/carbon-intensity/de_2020_hourly.csv"),
    ),
    (
        "FR",
        "fr_2020_hourly.csv",
        include_str!("../../data/carbon-intensity/fr_2020_hourly.csv"),
    ),
    (
        "GB",
        "gb_2020_hourly.csv",
        include_str!("../../data/carbon-intensity/gb_2020_hourly.csv"),
    ),
];

/// Whether `g` is a usable carbon intensity (finite, not negative).
pub(super) fn valid_intensity(g: f64) -> bool {
    g.is_finite() && g >= 0.0
}

/// Carbon-intensity curves per zone (zone names are case-sensitive), each a constant or a
/// piecewise-constant time series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CarbonCurves {
    zones: BTreeMap<String, Curve>,
}

impl CarbonCurves {
    /// An empty set of curves (every lookup fails with [`CarbonError::UnknownZone`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A constant intensity per zone; rejects negative, NaN or infinite values, empty zone
    /// names and zones given twice.
    pub fn static_table(
        table: impl IntoIterator<Item = (String, f64)>,
    ) -> Result<Self, CarbonError> {
        let mut zones = BTreeMap::new();
        for (zone, g) in table {
            if zone.is_empty() {
                return Err(CarbonError::Config {
                    field: "static table".into(),
                    message: "empty zone name".into(),
                });
            }
            if !valid_intensity(g) {
                return Err(CarbonError::InvalidValue {
                    zone,
                    value: g,
                    context: "static table".into(),
                });
            }
            if zones.insert(zone.clone(), Curve::Constant(g)).is_some() {
                return Err(CarbonError::Config {
                    field: "static table".into(),
                    message: format!("zone `{zone}` is given twice"),
                });
            }
        }
        Ok(Self { zones })
    }

    /// A series for one zone from points in any order; rejects non-positive durations,
    /// invalid values, overlaps and an empty list. Gaps between points are allowed.
    pub fn from_points(
        zone: impl Into<String>,
        points: impl IntoIterator<Item = IntensityPoint>,
    ) -> Result<Self, CarbonError> {
        let zone = zone.into();
        let invalid = |message: String| CarbonError::InvalidSeries {
            zone: zone.clone(),
            message,
        };
        let mut segs = Vec::new();
        for p in points {
            if !valid_intensity(p.g_per_kwh) {
                return Err(CarbonError::InvalidValue {
                    zone: zone.clone(),
                    value: p.g_per_kwh,
                    context: format!("point starting {}", p.start.to_rfc3339()),
                });
            }
            let end = (p.duration_s > 0)
                .then(|| TimeDelta::try_seconds(p.duration_s))
                .flatten()
                .and_then(|d| p.start.checked_add_signed(d))
                .ok_or_else(|| {
                    invalid(format!(
                        "point starting {} has an invalid duration of {} s",
                        p.start.to_rfc3339(),
                        p.duration_s
                    ))
                })?;
            segs.push(Seg {
                start: p.start,
                end,
                g: p.g_per_kwh,
            });
        }
        if segs.is_empty() {
            return Err(invalid("no points".into()));
        }
        segs.sort_by_key(|s| s.start);
        for w in segs.windows(2) {
            if w[1].start < w[0].end {
                return Err(invalid(format!(
                    "point starting {} overlaps the one starting {}",
                    w[1].start.to_rfc3339(),
                    w[0].start.to_rfc3339()
                )));
            }
        }
        let mut out = Self::new();
        out.insert_series(zone, segs);
        Ok(out)
    }

    /// Adds (or replaces) an already validated series.
    pub(super) fn insert_series(&mut self, zone: String, segs: Vec<Seg>) {
        self.zones.insert(zone, Curve::Series(segs));
    }

    /// The real 2020 hourly curves of Germany, France and Great Britain (zones `DE`, `FR`,
    /// `GB`), embedded in the crate; see `data/carbon-intensity/README.md` for the source.
    pub fn embedded_2020() -> Result<Self, CarbonError> {
        let mut out = Self::new();
        for (zone, file, text) in EMBEDDED_2020 {
            let name = format!("embedded {file}");
            out = out.merge(Self::from_csv_reader(zone, &name, text.as_bytes())?);
        }
        Ok(out)
    }

    /// One set of curves from the embedded 2020 data (optional), carbon-aware-sdk forecast
    /// files, per-zone CSV files and constants, in that order: a later source's curve wins
    /// for a zone in several. Every error names the file or zone at fault.
    pub fn load<P: AsRef<std::path::Path>>(
        embedded_2020: bool,
        forecast_files: &[P],
        csv_files: impl IntoIterator<Item = (String, P)>,
        constants: impl IntoIterator<Item = (String, f64)>,
    ) -> Result<Self, CarbonError> {
        let mut curves = if embedded_2020 {
            Self::embedded_2020()?
        } else {
            Self::new()
        };
        for f in forecast_files {
            curves = curves.merge(Self::from_gsf_forecast_file(f)?);
        }
        for (zone, file) in csv_files {
            curves = curves.merge(Self::from_csv_file(&zone, file)?);
        }
        let constants: Vec<(String, f64)> = constants.into_iter().collect();
        if !constants.is_empty() {
            curves = curves.merge(Self::static_table(constants)?);
        }
        Ok(curves)
    }

    /// All zones of `self` and `other`; `other`'s curve wins for a zone in both.
    pub fn merge(mut self, other: Self) -> Self {
        self.zones.extend(other.zones);
        self
    }

    /// The known zones, sorted.
    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.zones.keys().map(String::as_str)
    }

    /// `[start, end)` covered by the zone's curve (gaps included); a constant covers all
    /// representable time. `None` for an unknown zone.
    pub fn coverage(&self, zone: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.zones.get(zone).map(coverage_of)
    }

    fn curve(&self, zone: &str) -> Result<&Curve, CarbonError> {
        self.zones
            .get(zone)
            .ok_or_else(|| CarbonError::UnknownZone {
                zone: zone.to_string(),
                known: self.zones.keys().cloned().collect(),
            })
    }

    /// Intensity of `zone` at `t`: the value of the interval `[start, start + duration)`
    /// containing `t`.
    pub fn intensity_at(&self, zone: &str, t: DateTime<Utc>) -> Result<f64, CarbonError> {
        let segs = match self.curve(zone)? {
            Curve::Constant(g) => return Ok(*g),
            Curve::Series(segs) => segs,
        };
        let out = |gap| CarbonError::OutOfCoverage {
            zone: zone.to_string(),
            from: t,
            to: t,
            coverage: series_coverage(segs),
            gap,
        };
        let i = segs.partition_point(|s| s.start <= t);
        let Some(seg) = i.checked_sub(1).and_then(|j| segs.get(j)) else {
            return Err(out(None));
        };
        if t < seg.end {
            return Ok(seg.g);
        }
        Err(out(segs.get(i).map(|next| (seg.end, next.start))))
    }

    /// The intervals of `zone` overlapping `[from, to)`, clipped to it (durations in whole
    /// seconds); a constant zone gives one point spanning the window. The whole window must
    /// be covered, without gaps.
    pub fn forecast(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError> {
        Ok(self
            .segments(zone, from, to)?
            .into_iter()
            .map(Seg::to_point)
            .collect())
    }

    /// Time-weighted mean intensity of `zone` over `[from, to)`; the whole window must be
    /// covered, without gaps.
    pub fn mean_over(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<f64, CarbonError> {
        let segs = self.segments(zone, from, to)?;
        let (sum, weight) = segs.iter().fold((0.0, 0.0), |(s, w), seg| {
            let d = (seg.end - seg.start).as_seconds_f64();
            (s + seg.g * d, w + d)
        });
        if weight > 0.0 {
            Ok(sum / weight)
        } else {
            Err(CarbonError::InvalidWindow { from, to })
        }
    }

    /// The segments covering `[from, to)` exactly, clipped to it.
    fn segments(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Seg>, CarbonError> {
        let curve = self.curve(zone)?;
        if from >= to {
            return Err(CarbonError::InvalidWindow { from, to });
        }
        let segs = match curve {
            Curve::Constant(g) => {
                return Ok(vec![Seg {
                    start: from,
                    end: to,
                    g: *g,
                }]);
            }
            Curve::Series(segs) => segs,
        };
        let coverage = series_coverage(segs);
        let out = |gap| CarbonError::OutOfCoverage {
            zone: zone.to_string(),
            from,
            to,
            coverage,
            gap,
        };
        if from < coverage.0 || to > coverage.1 {
            return Err(out(None));
        }
        let first = segs.partition_point(|s| s.end <= from);
        let mut cursor = from;
        let mut result = Vec::new();
        for seg in segs.get(first..).unwrap_or_default() {
            if seg.start >= to {
                break;
            }
            if seg.start > cursor {
                return Err(out(Some((cursor, seg.start))));
            }
            result.push(Seg {
                start: seg.start.max(from),
                end: seg.end.min(to),
                g: seg.g,
            });
            cursor = seg.end;
        }
        if cursor < to {
            // Unreachable while `to` is within the coverage; kept as a guard.
            return Err(out(None));
        }
        Ok(result)
    }
}

fn coverage_of(curve: &Curve) -> (DateTime<Utc>, DateTime<Utc>) {
    match curve {
        Curve::Constant(_) => (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
        Curve::Series(segs) => series_coverage(segs),
    }
}

fn series_coverage(segs: &[Seg]) -> (DateTime<Utc>, DateTime<Utc>) {
    match (segs.first(), segs.last()) {
        (Some(a), Some(b)) => (a.start, b.end),
        // Series are never empty; an empty one covers nothing.
        _ => (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
    }
}

#[async_trait::async_trait]
impl CarbonIntensitySource for CarbonCurves {
    async fn intensity_at(&self, zone: &str, t: DateTime<Utc>) -> Result<f64, CarbonError> {
        CarbonCurves::intensity_at(self, zone, t)
    }

    async fn forecast(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, CarbonError> {
        CarbonCurves::forecast(self, zone, from, to)
    }

    async fn mean_over(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<f64, CarbonError> {
        CarbonCurves::mean_over(self, zone, from, to)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 6, 1, h, m, 0).unwrap()
    }

    /// 15-min series 10:00–11:00: 100, 200, 300, 400.
    fn quarter_hours() -> CarbonCurves {
        let pts = [100.0, 200.0, 300.0, 400.0]
            .iter()
            .enumerate()
            .map(|(i, &g)| IntensityPoint {
                start: t(10, 15 * i as u32),
                duration_s: 900,
                g_per_kwh: g,
            });
        CarbonCurves::from_points("DE", pts).unwrap()
    }

    #[test]
    fn lookup_at_boundaries() {
        let c = quarter_hours();
        assert_eq!(c.intensity_at("DE", t(10, 0)).unwrap(), 100.0);
        assert_eq!(
            c.intensity_at("DE", t(10, 15) - TimeDelta::nanoseconds(1))
                .unwrap(),
            100.0
        );
        assert_eq!(c.intensity_at("DE", t(10, 15)).unwrap(), 200.0);
        assert_eq!(c.intensity_at("DE", t(10, 59)).unwrap(), 400.0);
        // End is exclusive, start inclusive.
        let after = c.intensity_at("DE", t(11, 0)).unwrap_err();
        assert!(matches!(
            after,
            CarbonError::OutOfCoverage { gap: None, .. }
        ));
        let msg = after.to_string();
        assert!(msg.contains("2020-06-01T11:00:00+00:00"), "{msg}");
        assert!(
            msg.contains("coverage [2020-06-01T10:00:00+00:00, 2020-06-01T11:00:00+00:00)"),
            "{msg}"
        );
        let before = c
            .intensity_at("DE", t(10, 0) - TimeDelta::seconds(1))
            .unwrap_err();
        assert!(matches!(before, CarbonError::OutOfCoverage { .. }));
        assert_eq!(c.coverage("DE"), Some((t(10, 0), t(11, 0))));
        assert_eq!(c.coverage("de"), None);
    }

    #[test]
    fn mean_over_quarter_hours_matches_hand_value() {
        let c = quarter_hours();
        // Whole hour: (100+200+300+400)/4.
        assert!((c.mean_over("DE", t(10, 0), t(11, 0)).unwrap() - 250.0).abs() < 1e-9);
        // 10:10–10:40: 5 min @100, 15 @200, 10 @300 → (500+3000+3000)/30.
        let hand = (5.0 * 100.0 + 15.0 * 200.0 + 10.0 * 300.0) / 30.0;
        assert!((c.mean_over("DE", t(10, 10), t(10, 40)).unwrap() - hand).abs() < 1e-9);
        // Inside one interval.
        assert_eq!(c.mean_over("DE", t(10, 16), t(10, 17)).unwrap(), 200.0);
    }

    #[test]
    fn forecast_clips_to_window() {
        let c = quarter_hours();
        let f = c.forecast("DE", t(10, 10), t(10, 40)).unwrap();
        assert_eq!(
            f,
            vec![
                IntensityPoint {
                    start: t(10, 10),
                    duration_s: 300,
                    g_per_kwh: 100.0
                },
                IntensityPoint {
                    start: t(10, 15),
                    duration_s: 900,
                    g_per_kwh: 200.0
                },
                IntensityPoint {
                    start: t(10, 30),
                    duration_s: 600,
                    g_per_kwh: 300.0
                },
            ]
        );
        // Window ending exactly on a boundary does not include the next interval.
        assert_eq!(c.forecast("DE", t(10, 0), t(10, 15)).unwrap().len(), 1);
        assert!(matches!(
            c.forecast("DE", t(10, 30), t(11, 1)).unwrap_err(),
            CarbonError::OutOfCoverage { .. }
        ));
        assert!(matches!(
            c.forecast("DE", t(10, 30), t(10, 30)).unwrap_err(),
            CarbonError::InvalidWindow { .. }
        ));
    }

    #[test]
    fn gaps_are_outside_coverage() {
        let pts = [
            IntensityPoint {
                start: t(10, 0),
                duration_s: 900,
                g_per_kwh: 1.0,
            },
            IntensityPoint {
                start: t(10, 30),
                duration_s: 900,
                g_per_kwh: 2.0,
            },
        ];
        let c = CarbonCurves::from_points("X", pts).unwrap();
        let e = c.intensity_at("X", t(10, 20)).unwrap_err();
        assert!(
            matches!(e, CarbonError::OutOfCoverage { gap: Some((a, b)), .. } if a == t(10, 15) && b == t(10, 30))
        );
        assert!(e.to_string().contains("gap"), "{e}");
        let e = c.mean_over("X", t(10, 0), t(10, 45)).unwrap_err();
        assert!(matches!(e, CarbonError::OutOfCoverage { gap: Some(_), .. }));
        assert_eq!(c.intensity_at("X", t(10, 30)).unwrap(), 2.0);
        assert_eq!(c.mean_over("X", t(10, 30), t(10, 45)).unwrap(), 2.0);
    }

    #[test]
    fn unknown_zone_lists_known_zones() {
        let c =
            quarter_hours().merge(CarbonCurves::static_table([("FR".to_string(), 50.0)]).unwrap());
        let e = c.intensity_at("XX", t(10, 0)).unwrap_err();
        assert!(matches!(e, CarbonError::UnknownZone { .. }));
        assert!(e.to_string().contains("known zones: DE, FR"), "{e}");
        let e = c.forecast("de", t(10, 0), t(10, 5)).unwrap_err();
        assert!(matches!(e, CarbonError::UnknownZone { .. }));
        let e = CarbonCurves::new()
            .mean_over("DE", t(10, 0), t(11, 0))
            .unwrap_err();
        assert!(e.to_string().contains("known zones: none"), "{e}");
    }

    #[test]
    fn static_table_is_constant_and_validated() {
        let c = CarbonCurves::static_table([("DE".into(), 300.0), ("FR".into(), 50.0)]).unwrap();
        assert_eq!(c.zones().collect::<Vec<_>>(), ["DE", "FR"]);
        let far = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(c.intensity_at("FR", far).unwrap(), 50.0);
        assert_eq!(
            c.forecast("DE", t(1, 0), t(3, 0)).unwrap(),
            vec![IntensityPoint {
                start: t(1, 0),
                duration_s: 7200,
                g_per_kwh: 300.0
            }]
        );
        assert_eq!(c.mean_over("DE", t(1, 0), t(3, 0)).unwrap(), 300.0);
        let (a, b) = c.coverage("DE").unwrap();
        assert!(a < t(0, 0) && b > far);

        let e = CarbonCurves::static_table([("GB".into(), -1.0)]).unwrap_err();
        assert!(matches!(e, CarbonError::InvalidValue { .. }));
        assert!(e.to_string().contains("`GB`"), "{e}");
        let e = CarbonCurves::static_table([("PL".into(), f64::NAN)]).unwrap_err();
        assert!(e.to_string().contains("`PL`"), "{e}");
        let e = CarbonCurves::static_table([("PL".into(), 1.0), ("PL".into(), 2.0)]).unwrap_err();
        assert!(e.to_string().contains("`PL`"), "{e}");
    }

    #[test]
    fn merge_other_wins() {
        let a = CarbonCurves::static_table([("DE".into(), 1.0), ("FR".into(), 2.0)]).unwrap();
        let b = quarter_hours();
        let m = a.merge(b);
        assert_eq!(m.intensity_at("DE", t(10, 0)).unwrap(), 100.0);
        assert_eq!(m.intensity_at("FR", t(10, 0)).unwrap(), 2.0);
    }

    #[test]
    fn from_points_rejects_bad_series() {
        let p = |m, d, g| IntensityPoint {
            start: t(10, m),
            duration_s: d,
            g_per_kwh: g,
        };
        assert!(CarbonCurves::from_points("Z", []).is_err());
        assert!(CarbonCurves::from_points("Z", [p(0, 0, 1.0)]).is_err());
        assert!(CarbonCurves::from_points("Z", [p(0, 60, -1.0)]).is_err());
        assert!(CarbonCurves::from_points("Z", [p(0, i64::MAX, 1.0)]).is_err());
        let e = CarbonCurves::from_points("Z", [p(0, 900, 1.0), p(10, 900, 1.0)]).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        // Unsorted input is fine.
        let c = CarbonCurves::from_points("Z", [p(15, 900, 2.0), p(0, 900, 1.0)]).unwrap();
        assert_eq!(c.mean_over("Z", t(10, 0), t(10, 30)).unwrap(), 1.5);
    }

    #[test]
    fn embedded_2020_matches_readme_figures() {
        let c = CarbonCurves::embedded_2020().unwrap();
        assert_eq!(c.zones().collect::<Vec<_>>(), ["DE", "FR", "GB"]);
        // README (raw series): min / mean / max. Hourly means are a little narrower, and
        // GB's time-weighted mean is lower than the raw row mean (15-min winter stretch).
        for (zone, min, mean, max) in [
            ("DE", 101.0, 315.0, 593.0),
            ("FR", 19.0, 57.0, 116.0),
            ("GB", 64.0, 218.0, 395.0),
        ] {
            let (from, to) = c.coverage(zone).unwrap();
            assert_eq!(from, Utc.with_ymd_and_hms(2019, 12, 20, 0, 0, 0).unwrap());
            assert!(to >= Utc.with_ymd_and_hms(2021, 1, 9, 23, 0, 0).unwrap());
            let pts = c.forecast(zone, from, to).unwrap();
            assert!(pts.len() > 9000, "{zone}: {}", pts.len());
            assert!(
                pts.iter().all(|p| p.duration_s == 3600),
                "{zone}: not hourly"
            );
            let lo = pts
                .iter()
                .map(|p| p.g_per_kwh)
                .fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.g_per_kwh).fold(0.0, f64::max);
            let avg = c.mean_over(zone, from, to).unwrap();
            assert!(lo >= min - 1.0 && lo <= min * 1.05 + 1.0, "{zone} min {lo}");
            assert!(hi <= max + 1.0 && hi >= max * 0.95 - 1.0, "{zone} max {hi}");
            assert!((avg - mean).abs() <= mean * 0.02 + 1.0, "{zone} mean {avg}");
        }
        // First DE hour = mean of the four 15-min source points of 2019-12-20 00:xx.
        let first = Utc.with_ymd_and_hms(2019, 12, 20, 0, 30, 0).unwrap();
        assert_eq!(c.intensity_at("DE", first).unwrap(), 217.818);
        // A summer noon in France is far cleaner than in Germany.
        let noon = Utc.with_ymd_and_hms(2020, 7, 1, 12, 0, 0).unwrap();
        assert!(c.intensity_at("FR", noon).unwrap() < c.intensity_at("DE", noon).unwrap());
        let e = c
            .intensity_at("DE", Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("coverage [2019-12-20T00:00:00+00:00"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn trait_object_delegates() {
        let c: Box<dyn CarbonIntensitySource> = Box::new(quarter_hours());
        assert_eq!(c.intensity_at("DE", t(10, 20)).await.unwrap(), 200.0);
        assert_eq!(c.forecast("DE", t(10, 0), t(11, 0)).await.unwrap().len(), 4);
        assert!((c.mean_over("DE", t(10, 0), t(11, 0)).await.unwrap() - 250.0).abs() < 1e-9);
        assert!(c.intensity_at("FR", t(10, 20)).await.is_err());
    }
}
