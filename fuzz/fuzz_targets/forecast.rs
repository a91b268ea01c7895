//! Carbon-intensity inputs: the carbon-aware-sdk forecast JSON and the per-zone CSV, for
//! arbitrary bytes; whatever parses is queried at a few instants.
#![no_main]

use chrono::{TimeZone, Utc};
use kepler_client::carbon::CarbonCurves;
use libfuzzer_sys::fuzz_target;

fn probe(curves: &CarbonCurves) {
    let zones: Vec<String> = curves.zones().map(str::to_string).collect();
    for zone in &zones {
        if let Some((from, to)) = curves.coverage(zone) {
            let _ = curves.intensity_at(zone, from);
            let _ = curves.intensity_at(zone, to);
            let _ = curves.intensity_at(zone, from + (to - from) / 2);
        }
        if let Some(t) = Utc.with_ymd_and_hms(2020, 6, 1, 0, 0, 0).single() {
            let _ = curves.intensity_at(zone, t);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = CarbonCurves::from_gsf_forecast_json("fuzz.json", text) {
            probe(&c);
        }
    }
    if let Ok(c) = CarbonCurves::from_csv_reader("ZZ", "fuzz.csv", data) {
        probe(&c);
    }
});
