//! `Request::decode` then `decide` (filter reply and priorities) on the demo fleet's view,
//! and the deadline fail-open replies built from `Echo::of`, for arbitrary request bodies:
//! every reply to a body that is strict JSON is strict JSON. (A reply hands Node objects
//! back byte for byte, so a body that serde_json only scans — say a lone surrogate escape
//! in a field ecoplace ignores, which Go's decoder turns into U+FFFD — gets it back too.)
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use optimizer::power::CurvePowerModel;
use scheduler::config::Config;
use scheduler::extender::decide::decide;
use scheduler::extender::fleet::FleetView;
use scheduler::extender::Verb;
use scheduler::extender::reply;
use scheduler::extender::wire::{Echo, Request};
use scheduler::server::service::{self, Service};

/// The demo extender's first view (built once) and the fitted-curve power model.
fn fixture() -> &'static (Arc<FleetView>, CurvePowerModel) {
    static FIXTURE: OnceLock<(Arc<FleetView>, CurvePowerModel)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let view = rt.block_on(async {
            let mut parts = service::demo(Config::default()).expect("demo parts");
            parts.clock = Arc::new(|| {
                Utc.with_ymd_and_hms(2020, 3, 4, 12, 0, 0)
                    .single()
                    .unwrap_or_default()
            });
            let svc = Service::start(parts, Duration::from_secs(3600))
                .await
                .expect("service");
            svc.extender.view()
        });
        // Keep the runtime (and the view updater on it) alive for the whole run.
        std::mem::forget(rt);
        (view, CurvePowerModel::new())
    })
}

fn json(reply: &reply::Reply, strict: bool) {
    if strict {
        serde_json::from_slice::<serde_json::Value>(&reply.to_vec()).expect("reply is JSON");
    }
}

fuzz_target!(|data: &[u8]| {
    let (view, power) = fixture();
    let request = bytes::Bytes::copy_from_slice(data);
    let strict = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    if let Ok(req) = Request::decode(data) {
        let decision = decide(view, &req, power);
        json(&decision.filter_reply(&req, &request).expect("filter reply"), strict);
        let mut out = Vec::new();
        decision.write_priorities(&mut out).expect("priorities");
        serde_json::from_slice::<serde_json::Value>(&out).expect("priorities are JSON");
        let _ = decision.best();
        if let Some(echo) = req.echo() {
            assert_eq!(Echo::of(data).ok(), Some(echo));
        }
        // Prioritize's one-pass decode reads the same candidates.
        let one_pass = Request::decode_for(data, Verb::Prioritize).expect("one-pass decode");
        let mut again = Vec::new();
        decide(view, &one_pass, power).write_priorities(&mut again).expect("priorities");
        assert_eq!(again, out, "one-pass and two-pass decodes score alike");
    }
    if let Ok(echo) = Echo::of(data) {
        for verb in [Verb::Filter, Verb::Prioritize] {
            json(&reply::fail_open(verb, &request, echo.clone(), 5).expect("fail-open reply"), strict);
        }
    }
});
