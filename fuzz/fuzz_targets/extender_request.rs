//! `Request::decode` then `decide` (filter result and priorities) on the demo fleet's view,
//! for arbitrary request bodies.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use optimizer::power::CurvePowerModel;
use scheduler::config::Config;
use scheduler::extender::decide::decide;
use scheduler::extender::fleet::FleetView;
use scheduler::extender::wire::Request;
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

fuzz_target!(|data: &[u8]| {
    let (view, power) = fixture();
    if let Ok(req) = Request::decode(data) {
        let decision = decide(view, &req, power);
        let _ = decision.filter_result(&req);
        let mut out = Vec::new();
        let _ = decision.write_priorities(&mut out);
        let _ = decision.best();
    }
});
