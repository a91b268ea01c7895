//! Loading carbon-intensity curves from CSV (`Time,Carbon Intensity`) and from Green
//! Software Foundation carbon-aware-sdk forecast JSON.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use super::curves::{Seg, valid_intensity};
use super::{CarbonCurves, CarbonError};

const TIME_COLUMN: &str = "Time";
const VALUE_COLUMN: &str = "Carbon Intensity";
const CSV_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

fn parse_err(source: &str, line: Option<u64>, column: Option<u64>, msg: String) -> CarbonError {
    CarbonError::Parse {
        source_name: source.to_string(),
        line,
        column,
        message: msg,
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, CarbonError> {
    std::fs::read(path).map_err(|source| CarbonError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339.
fn parse_csv_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, CSV_TIME_FORMAT)
        .map(|n| n.and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)))
        .ok()
}

impl CarbonCurves {
    /// One zone from CSV with columns `Time` (UTC, `YYYY-MM-DD HH:MM:SS` or RFC 3339) and
    /// `Carbon Intensity` (gCO2e/kWh); each row lasts until the next one, the last row as
    /// long as the gap before it. `source_name` names the input in errors.
    pub fn from_csv_reader<R: std::io::Read>(
        zone: impl Into<String>,
        source_name: &str,
        reader: R,
    ) -> Result<Self, CarbonError> {
        let src = source_name;
        let csv_err = |e: csv::Error| {
            let line = e.position().map(|p| p.line());
            parse_err(src, line, None, format!("malformed CSV: {e}"))
        };
        // The csv crate counts CRLF-terminated lines one behind: normalise to LF first.
        let mut raw = Vec::new();
        let mut reader = reader;
        reader.read_to_end(&mut raw).map_err(|e| CarbonError::Io {
            path: src.to_string(),
            source: e,
        })?;
        if raw.contains(&b'\r') {
            let mut lf = Vec::with_capacity(raw.len());
            for (i, b) in raw.iter().enumerate() {
                if !(*b == b'\r' && raw.get(i + 1) == Some(&b'\n')) {
                    lf.push(*b);
                }
            }
            raw = lf;
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(raw.as_slice());
        let headers = rdr.headers().map_err(csv_err)?.clone();
        let names: Vec<&str> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}'))
            .collect();
        if names.iter().all(|h| h.is_empty()) {
            return Err(parse_err(
                src,
                Some(1),
                None,
                format!("empty file (expected the header `{TIME_COLUMN},{VALUE_COLUMN}`)"),
            ));
        }
        let column = |name: &str| {
            names.iter().position(|h| *h == name).ok_or_else(|| {
                parse_err(
                    src,
                    Some(1),
                    None,
                    format!("missing column `{name}` (header is `{}`)", names.join(",")),
                )
            })
        };
        let (ti, vi) = (column(TIME_COLUMN)?, column(VALUE_COLUMN)?);

        // (line, time, value) of every row.
        let mut rows: Vec<(u64, DateTime<Utc>, f64)> = Vec::new();
        for record in rdr.records() {
            let record = record.map_err(csv_err)?;
            let line = record.position().map(|p| p.line());
            let err = |msg: String| parse_err(src, line, None, msg);
            let field = |i: usize, name: &str| {
                record
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(format!("missing `{name}` field")))
            };
            let raw_t = field(ti, TIME_COLUMN)?;
            let t = parse_csv_time(raw_t).ok_or_else(|| {
                err(format!(
                    "bad timestamp `{raw_t}` (expected `YYYY-MM-DD HH:MM:SS` in UTC or RFC 3339)"
                ))
            })?;
            let raw_v = field(vi, VALUE_COLUMN)?;
            let g: f64 = raw_v
                .parse()
                .map_err(|_| err(format!("non-numeric carbon intensity `{raw_v}`")))?;
            if !g.is_finite() {
                return Err(err(format!(
                    "carbon intensity `{raw_v}` is not a finite number"
                )));
            }
            if g < 0.0 {
                return Err(err(format!("negative carbon intensity `{raw_v}`")));
            }
            if let Some(&(prev_line, prev_t, _)) = rows.last() {
                if t == prev_t {
                    return Err(err(format!(
                        "duplicate timestamp {raw_t} (also on line {prev_line})"
                    )));
                }
                if t < prev_t {
                    return Err(err(format!(
                        "timestamps not sorted: {raw_t} is before {} on line {prev_line}",
                        prev_t.format(CSV_TIME_FORMAT)
                    )));
                }
            }
            rows.push((line.unwrap_or(0), t, g));
        }

        let mut segs = Vec::with_capacity(rows.len());
        for (i, &(line, t, g)) in rows.iter().enumerate() {
            let end = match (rows.get(i + 1), i.checked_sub(1).and_then(|j| rows.get(j))) {
                (Some(&(_, next, _)), _) => Some(next),
                (None, Some(&(_, prev, _))) => t.checked_add_signed(t - prev),
                (None, None) => {
                    return Err(parse_err(
                        src,
                        Some(line),
                        None,
                        "only one data row: cannot infer its duration (need at least two rows)"
                            .into(),
                    ));
                }
            };
            let end = end
                .ok_or_else(|| parse_err(src, Some(line), None, "timestamp out of range".into()))?;
            segs.push(Seg { start: t, end, g });
        }
        if segs.is_empty() {
            return Err(parse_err(
                src,
                Some(2),
                None,
                "no data rows after the header".into(),
            ));
        }
        let mut out = Self::new();
        out.insert_series(zone.into(), segs);
        Ok(out)
    }

    /// One zone from a CSV file (see [`CarbonCurves::from_csv_reader`]); errors name the path.
    pub fn from_csv_file(
        zone: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Self, CarbonError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Self::from_csv_reader(zone, &path.display().to_string(), bytes.as_slice())
    }

    /// Zones from a carbon-aware-sdk forecast: a JSON array of forecasts (or one forecast
    /// object), each with `forecastData: [{location, timestamp, duration (minutes), value}]`;
    /// points are grouped by `location`, other fields are ignored.
    pub fn from_gsf_forecast_json(source_name: &str, json: &str) -> Result<Self, CarbonError> {
        let src = source_name;
        let json_err = |e: serde_json::Error| {
            let (line, col) = (e.line() as u64, e.column() as u64);
            let full = e.to_string();
            let suffix = format!(" at line {line} column {col}");
            let msg = full.strip_suffix(&suffix).unwrap_or(&full);
            let path = json_path_at(json, e.line(), e.column());
            parse_err(
                src,
                (line > 0).then_some(line),
                (line > 0).then_some(col),
                format!("{msg} (at {path})"),
            )
        };
        let is_array = json.trim_start().starts_with('[');
        let forecasts: Vec<GsfForecast> = if is_array {
            serde_json::from_str(json).map_err(json_err)?
        } else {
            vec![serde_json::from_str(json).map_err(json_err)?]
        };
        let root = |i: usize| {
            if is_array {
                format!("$[{i}]")
            } else {
                "$".to_string()
            }
        };

        // location -> (segment, JSON path of its point)
        let mut by_zone: BTreeMap<String, Vec<(Seg, String)>> = BTreeMap::new();
        for (i, f) in forecasts.into_iter().enumerate() {
            for (j, p) in f.forecast_data.into_iter().enumerate() {
                let path = format!("{}.forecastData[{j}]", root(i));
                let end = TimeDelta::try_seconds(p.duration_s)
                    .and_then(|d| p.timestamp.checked_add_signed(d))
                    .ok_or_else(|| {
                        parse_err(
                            src,
                            None,
                            None,
                            format!("{path}: end of interval out of range"),
                        )
                    })?;
                let seg = Seg {
                    start: p.timestamp,
                    end,
                    g: p.value,
                };
                by_zone.entry(p.location).or_default().push((seg, path));
            }
        }
        if by_zone.is_empty() {
            return Err(parse_err(
                src,
                None,
                None,
                "no forecast data points (every `forecastData` is empty)".into(),
            ));
        }
        let mut out = Self::new();
        for (zone, mut points) in by_zone {
            points.sort_by_key(|(s, _)| s.start);
            let mut segs: Vec<Seg> = Vec::with_capacity(points.len());
            let mut prev_path = String::new();
            for (seg, path) in points {
                if let Some(last) = segs.last() {
                    if *last == seg {
                        continue; // the same point repeated (e.g. two overlapping forecasts)
                    }
                    if seg.start < last.end {
                        return Err(parse_err(
                            src,
                            None,
                            None,
                            format!(
                                "{path} ({}) overlaps {prev_path} ({} for {} min) for location `{zone}`",
                                seg.start.to_rfc3339(),
                                last.start.to_rfc3339(),
                                (last.end - last.start).num_minutes()
                            ),
                        ));
                    }
                }
                segs.push(seg);
                prev_path = path;
            }
            out.insert_series(zone, segs);
        }
        Ok(out)
    }

    /// Zones from a carbon-aware-sdk forecast file (see
    /// [`CarbonCurves::from_gsf_forecast_json`]); errors name the path.
    pub fn from_gsf_forecast_file(path: impl AsRef<Path>) -> Result<Self, CarbonError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = read_file(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            parse_err(
                &name,
                None,
                None,
                format!("not UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        Self::from_gsf_forecast_json(&name, text)
    }
}

/// One carbon-aware-sdk `EmissionsForecast`; only `forecastData` is used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GsfForecast {
    forecast_data: Vec<GsfPoint>,
}

/// One carbon-aware-sdk `EmissionsData` point.
#[derive(Deserialize)]
struct GsfPoint {
    #[serde(deserialize_with = "de_location")]
    location: String,
    #[serde(deserialize_with = "de_timestamp")]
    timestamp: DateTime<Utc>,
    #[serde(rename = "duration", deserialize_with = "de_minutes")]
    duration_s: i64,
    #[serde(deserialize_with = "de_value")]
    value: f64,
}

fn de_location<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(D::Error::custom("empty `location`"));
    }
    Ok(s)
}

fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| D::Error::custom(format!("bad `timestamp` {s:?} ({e}; expected RFC 3339)")))
}

/// Minutes (integer or fractional) to whole seconds, > 0.
fn de_minutes<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let m = f64::deserialize(d)?;
    let s = (m * 60.0).round();
    if !(1.0..=1e12).contains(&s) {
        return Err(D::Error::custom(format!(
            "bad `duration` {m}: expected a positive number of minutes"
        )));
    }
    Ok(s as i64)
}

fn de_value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let g = f64::deserialize(d)?;
    if !valid_intensity(g) {
        return Err(D::Error::custom(format!(
            "bad `value` {g}: expected a carbon intensity in gCO2e/kWh >= 0"
        )));
    }
    Ok(g)
}

/// The JSON path (`$[0].forecastData[3].value`) of the innermost container/key open at
/// 1-based `line`/`column` of `text`, assuming the text up to there is well-formed.
fn json_path_at(text: &str, line: usize, column: usize) -> String {
    enum Frame {
        Array(usize),
        Object(Option<String>),
    }
    let bytes = text.as_bytes();
    let mut line_start = 0;
    if line > 1 {
        let mut seen = 1;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                seen += 1;
                if seen == line {
                    line_start = i + 1;
                    break;
                }
            }
        }
    }
    let end = (line_start + column).min(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'[' => stack.push(Frame::Array(0)),
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b']' | b'}' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(k)) => {
                    *k = None;
                    expect_key = true;
                }
                None => {}
            },
            b':' => expect_key = false,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    if let Some(Frame::Object(k)) = stack.last_mut() {
                        let key = bytes.get(start..i.min(bytes.len())).unwrap_or_default();
                        *k = Some(String::from_utf8_lossy(key).into_owned());
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::from("$");
    for frame in &stack {
        match frame {
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
            Frame::Object(Some(k)) => {
                path.push('.');
                path.push_str(k);
            }
            Frame::Object(None) => {}
        }
    }
    path
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::io::Write;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    const DE_SAMPLE: &str = "Time,Carbon Intensity\n\
        2019-12-20 00:00:00,218.29003068829462\n\
        2019-12-20 00:15:00,217.8834341330206\n\
        2019-12-20 00:30:00,217.49442613204167\n\
        2019-12-20 00:45:00,217.60302457466918\n";

    fn csv_err(text: &str) -> String {
        CarbonCurves::from_csv_reader("DE", "bad.csv", text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn csv_durations_from_gaps() {
        let c = CarbonCurves::from_csv_reader("DE", "de.csv", DE_SAMPLE.as_bytes()).unwrap();
        // Last row gets the previous gap: coverage 00:00–01:00.
        assert_eq!(
            c.coverage("DE"),
            Some((utc(2019, 12, 20, 0, 0), utc(2019, 12, 20, 1, 0)))
        );
        let hand =
            (218.29003068829462 + 217.8834341330206 + 217.49442613204167 + 217.60302457466918)
                / 4.0;
        let mean = c
            .mean_over("DE", utc(2019, 12, 20, 0, 0), utc(2019, 12, 20, 1, 0))
            .unwrap();
        assert!((mean - hand).abs() < 1e-9);
        assert_eq!(
            c.intensity_at("DE", utc(2019, 12, 20, 0, 59)).unwrap(),
            217.60302457466918
        );
        // Uneven gaps: a missing row stretches the previous one.
        let c = CarbonCurves::from_csv_reader(
            "GB",
            "gb.csv",
            "Time,Carbon Intensity\n2020-01-01 00:00:00,10\n2020-01-01 01:00:00,20\n2020-01-01 01:30:00,30\n"
                .as_bytes(),
        )
        .unwrap();
        let f = c
            .forecast("GB", utc(2020, 1, 1, 0, 0), utc(2020, 1, 1, 2, 0))
            .unwrap();
        let durations: Vec<i64> = f.iter().map(|p| p.duration_s).collect();
        assert_eq!(durations, [3600, 1800, 1800]);
    }

    #[test]
    fn csv_accepts_column_order_crlf_and_rfc3339() {
        let text = "Carbon Intensity,Time\r\n5,2020-01-01T00:00:00Z\r\n6,2020-01-01T01:00:00+01:00\r\n7,2020-01-01 01:00:00\r\n";
        // 01:00+01:00 is 00:00Z: duplicate.
        let msg = CarbonCurves::from_csv_reader("Z", "x.csv", text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("x.csv: line 3: duplicate timestamp"), "{msg}");
        let text = "Carbon Intensity,Time\r\n5,2020-01-01T00:00:00Z\r\n6,2020-01-01 01:00:00\r\n";
        let c = CarbonCurves::from_csv_reader("Z", "x.csv", text.as_bytes()).unwrap();
        assert_eq!(c.intensity_at("Z", utc(2020, 1, 1, 1, 30)).unwrap(), 6.0);
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let ok = "Time,Carbon Intensity\n2020-01-01 00:00:00,1\n";
        let cases = [
            (
                format!("{ok}2020-01-01 00:30,2\n"),
                "bad.csv: line 3: bad timestamp `2020-01-01 00:30`",
            ),
            (
                format!("{ok}2020-01-01 00:30:00,abc\n"),
                "bad.csv: line 3: non-numeric carbon intensity `abc`",
            ),
            (
                format!("{ok}2020-01-01 00:30:00,-4\n"),
                "bad.csv: line 3: negative carbon intensity `-4`",
            ),
            (
                format!("{ok}2020-01-01 00:30:00,NaN\n"),
                "bad.csv: line 3: carbon intensity `NaN` is not a finite number",
            ),
            (
                format!("{ok}2020-01-01 00:30:00\n"),
                "bad.csv: line 3: missing `Carbon Intensity` field",
            ),
            (
                format!("{ok}2020-01-01 00:00:00,2\n"),
                "bad.csv: line 3: duplicate timestamp 2020-01-01 00:00:00 (also on line 2)",
            ),
            (
                format!("{ok}2019-12-31 23:00:00,2\n"),
                "bad.csv: line 3: timestamps not sorted",
            ),
            (
                "Time,Intensity\n2020-01-01 00:00:00,1\n".to_string(),
                "bad.csv: line 1: missing column `Carbon Intensity`",
            ),
            (String::new(), "bad.csv: line 1: empty file"),
            (
                "Time,Carbon Intensity\n".to_string(),
                "bad.csv: line 2: no data rows",
            ),
            (ok.to_string(), "bad.csv: line 2: only one data row"),
        ];
        for (text, want) in cases {
            let got = csv_err(&text);
            assert!(
                got.starts_with(want),
                "input {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn csv_file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fr_broken.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(
            f,
            "Time,Carbon Intensity\n2020-01-01 00:00:00,40\n2020-01-01 00:30:00,4O\n"
        )
        .unwrap();
        drop(f);
        let e = CarbonCurves::from_csv_file("FR", &path).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("fr_broken.csv: line 3: non-numeric"), "{msg}");
        assert!(matches!(e, CarbonError::Parse { line: Some(3), .. }));

        let e = CarbonCurves::from_csv_file("FR", dir.path().join("missing.csv")).unwrap_err();
        assert!(matches!(e, CarbonError::Io { .. }));
        assert!(e.to_string().contains("missing.csv"), "{e}");

        // A real slice of the shared data loads from a file.
        let path = dir.path().join("de.csv");
        std::fs::write(&path, DE_SAMPLE).unwrap();
        let c = CarbonCurves::from_csv_file("DE", &path).unwrap();
        assert_eq!(c.zones().collect::<Vec<_>>(), ["DE"]);
    }

    /// Shaped like `carbon-aware-cli emissions-forecasts` / the Web API's
    /// `/emissions/forecasts/current` answer.
    const GSF_SAMPLE: &str = r#"[
  {
    "generatedAt": "2022-08-10T11:00:00+00:00",
    "requestedAt": "2022-08-10T11:02:31.123+00:00",
    "location": "eastus",
    "dataStartAt": "2022-08-10T11:05:00+00:00",
    "dataEndAt": "2022-08-10T11:25:00+00:00",
    "windowSize": 10,
    "optimalDataPoints": [
      { "location": "eastus", "timestamp": "2022-08-10T11:15:00+00:00", "duration": 10, "value": 301.25 }
    ],
    "forecastData": [
      { "location": "eastus", "timestamp": "2022-08-10T11:05:00+00:00", "duration": 5, "value": 325.83 },
      { "location": "eastus", "timestamp": "2022-08-10T11:10:00+00:00", "duration": 5, "value": 319.02 },
      { "location": "eastus", "timestamp": "2022-08-10T11:15:00+00:00", "duration": 5, "value": 300.5 },
      { "location": "eastus", "timestamp": "2022-08-10T11:20:00+00:00", "duration": 5, "value": 302.0 }
    ]
  },
  {
    "generatedAt": "2022-08-10T11:00:00Z",
    "requestedAt": "2022-08-10T11:02:31Z",
    "location": "westus",
    "dataStartAt": null,
    "dataEndAt": null,
    "windowSize": 0,
    "optimalDataPoints": [],
    "forecastData": [
      { "location": "westus", "timestamp": "2022-08-10T11:10:00Z", "duration": 5, "value": 210 },
      { "location": "westus", "timestamp": "2022-08-10T11:05:00Z", "duration": 5, "value": 200 },
      { "location": "westus", "timestamp": "2022-08-10T13:15:00+02:00", "duration": 5, "value": 220 }
    ]
  }
]"#;

    #[test]
    fn gsf_forecast_realistic_sample() {
        let c = CarbonCurves::from_gsf_forecast_json("forecast.json", GSF_SAMPLE).unwrap();
        assert_eq!(c.zones().collect::<Vec<_>>(), ["eastus", "westus"]);
        assert_eq!(
            c.coverage("eastus"),
            Some((utc(2022, 8, 10, 11, 5), utc(2022, 8, 10, 11, 25)))
        );
        assert_eq!(
            c.intensity_at("eastus", utc(2022, 8, 10, 11, 12)).unwrap(),
            319.02
        );
        // Points are sorted, offsets normalised to UTC.
        let f = c
            .forecast("westus", utc(2022, 8, 10, 11, 5), utc(2022, 8, 10, 11, 20))
            .unwrap();
        let vals: Vec<f64> = f.iter().map(|p| p.g_per_kwh).collect();
        assert_eq!(vals, [200.0, 210.0, 220.0]);
        assert!(f.iter().all(|p| p.duration_s == 300));
        let mean = c
            .mean_over("eastus", utc(2022, 8, 10, 11, 5), utc(2022, 8, 10, 11, 25))
            .unwrap();
        assert!((mean - (325.83 + 319.02 + 300.5 + 302.0) / 4.0).abs() < 1e-9);
        // Outside the forecast window.
        let e = c
            .intensity_at("eastus", utc(2022, 8, 10, 12, 0))
            .unwrap_err();
        assert!(matches!(e, CarbonError::OutOfCoverage { .. }), "{e}");
    }

    #[test]
    fn gsf_single_object_and_file() {
        let one = r#"{"location":"uksouth","forecastData":[
            {"location":"uksouth","timestamp":"2024-03-01T00:00:00Z","duration":30,"value":120.5},
            {"location":"uksouth","timestamp":"2024-03-01T01:00:00Z","duration":30,"value":99}
        ]}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uk.json");
        std::fs::write(&path, one).unwrap();
        let c = CarbonCurves::from_gsf_forecast_file(&path).unwrap();
        assert_eq!(
            c.intensity_at("uksouth", utc(2024, 3, 1, 0, 29)).unwrap(),
            120.5
        );
        // 00:30–01:00 is a gap between the two points.
        let e = c
            .intensity_at("uksouth", utc(2024, 3, 1, 0, 45))
            .unwrap_err();
        assert!(
            matches!(e, CarbonError::OutOfCoverage { gap: Some(_), .. }),
            "{e}"
        );
    }

    #[test]
    fn gsf_errors_name_file_line_and_path() {
        let bad_value = GSF_SAMPLE.replace("\"value\": 319.02", "\"value\": -319.02");
        let e = CarbonCurves::from_gsf_forecast_json("forecast.json", &bad_value).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("forecast.json: line 14, column"), "{msg}");
        assert!(msg.contains("bad `value` -319.02"), "{msg}");
        assert!(msg.contains("(at $[0].forecastData[1])"), "{msg}");

        let bad_ts = GSF_SAMPLE.replace("2022-08-10T11:10:00Z", "2022-08-10 11:10");
        let msg = CarbonCurves::from_gsf_forecast_json("f.json", &bad_ts)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("f.json: line 28, column"), "{msg}");
        assert!(msg.contains("bad `timestamp`"), "{msg}");
        assert!(msg.contains("$[1].forecastData[0].timestamp"), "{msg}");

        let missing = GSF_SAMPLE.replace("\"duration\": 5, \"value\": 300.5", "\"value\": 300.5");
        let msg = CarbonCurves::from_gsf_forecast_json("f.json", &missing)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 15"), "{msg}");
        assert!(msg.contains("missing field `duration`"), "{msg}");
        assert!(msg.contains("$[0].forecastData[2]"), "{msg}");

        let syntax = "[{\"forecastData\": [\n  {\"location\": \"x\",}\n]}]";
        let msg = CarbonCurves::from_gsf_forecast_json("s.json", syntax)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("s.json: line 2, column"), "{msg}");

        let no_data = r#"[{"location":"x"}]"#;
        let msg = CarbonCurves::from_gsf_forecast_json("n.json", no_data)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing field `forecastData`"), "{msg}");

        let empty = r#"[{"forecastData":[]}]"#;
        let msg = CarbonCurves::from_gsf_forecast_json("e.json", empty)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("e.json: no forecast data points"), "{msg}");

        let overlap = r#"[{"forecastData":[
            {"location":"a","timestamp":"2024-01-01T00:00:00Z","duration":60,"value":1},
            {"location":"a","timestamp":"2024-01-01T00:30:00Z","duration":60,"value":2}]}]"#;
        let msg = CarbonCurves::from_gsf_forecast_json("o.json", overlap)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("o.json: $[0].forecastData[1]")
                && msg.contains("overlaps $[0].forecastData[0]"),
            "{msg}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken_forecast.json");
        std::fs::write(&path, &bad_value).unwrap();
        let msg = CarbonCurves::from_gsf_forecast_file(&path)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("broken_forecast.json: line 14"), "{msg}");
    }

    #[test]
    fn gsf_identical_repeated_points_are_merged() {
        let twice = r#"[
          {"forecastData":[{"location":"a","timestamp":"2024-01-01T00:00:00Z","duration":60,"value":1}]},
          {"forecastData":[{"location":"a","timestamp":"2024-01-01T00:00:00Z","duration":60,"value":1},
                           {"location":"a","timestamp":"2024-01-01T01:00:00Z","duration":60,"value":3}]}
        ]"#;
        let c = CarbonCurves::from_gsf_forecast_json("t.json", twice).unwrap();
        assert_eq!(
            c.mean_over("a", utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 2, 0))
                .unwrap(),
            2.0
        );
    }

    #[test]
    fn json_path_scanner() {
        let text = "{\"a\": [1, {\"b\": \"x,]\\\"y\", \"c\": 2}]}";
        let col = text.find("2}").unwrap() + 1;
        assert_eq!(json_path_at(text, 1, col), "$.a[1].c");
        let col = text.find("1,").unwrap() + 1;
        assert_eq!(json_path_at(text, 1, col), "$.a[0]");
    }
}
