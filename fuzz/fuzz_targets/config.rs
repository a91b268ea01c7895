//! ecoplace configuration YAML: parse and check, for arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scheduler::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz.yaml");
    }
});
