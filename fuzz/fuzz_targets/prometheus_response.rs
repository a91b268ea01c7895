//! Kepler-client's parsing of a Prometheus matrix response body (`query_samples`), for
//! arbitrary bytes.
#![no_main]

use kepler_client::matrix::MatrixBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = MatrixBody::new(
        "http://fuzz",
        "kepler_node_cpu_joules_total[5m]",
        data.to_vec(),
    );
    if let Ok(series) = body.series() {
        for s in &series {
            let _ = s.label("instance");
            let _ = s.samples().len();
            let _ = s.heap_bytes();
        }
    }
});
