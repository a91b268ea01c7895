//! The placement API's request path (`POST /v1/placements`, `POST /v1/rebalance`) for
//! arbitrary bodies: `PlacementRequest::decode` as JSON and as YAML, then what `Placer`
//! does before solving — `validate::check` (placement and rebalance rules),
//! `validate::weights`, `mapping::inputs` and `mapping::unplaceable` — and the JSON error
//! body the handler would send. Small valid requests (≤ 3 clusters, ≤ 3 workloads, ≤ 12
//! replicas) are also solved and rebalanced, with a 50 ms solver limit, and the answer is
//! encoded as the handler does.
#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use scheduler::config::PlacementConfig;
use scheduler::placement::{Format, PlacementError, PlacementRequest, Placer, mapping, validate};

/// Largest request that is also solved.
const SOLVE_CLUSTERS: usize = 3;
const SOLVE_WORKLOADS: usize = 3;
const SOLVE_REPLICAS: u64 = 12;

fn placer() -> &'static Placer {
    static PLACER: OnceLock<Placer> = OnceLock::new();
    PLACER.get_or_init(|| {
        Placer::new(PlacementConfig {
            time_limit_seconds: 0.05,
            ..PlacementConfig::default()
        })
    })
}

/// What the HTTP handler does with an error: its status and JSON body.
fn answer_error(e: &PlacementError) {
    assert!(matches!(e.status(), 400 | 422 | 500));
    let _ = serde_json::to_vec(&e.body());
}

fn drive(req: &PlacementRequest) {
    let now = Utc
        .with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for rebalance in [false, true] {
        let errors = validate::check(req, rebalance);
        if !errors.is_empty() {
            answer_error(&PlacementError::Invalid(errors));
            continue;
        }
        let weights = validate::weights(&req.weights);
        assert!(
            weights.is_ok(),
            "check passed but weights failed: {weights:?}"
        );
        let (workloads, targets) = mapping::inputs(req);
        assert_eq!(workloads.len(), req.workloads.len());
        assert_eq!(targets.len(), req.clusters.len());
        let unplaceable = mapping::unplaceable(&workloads, &targets);
        if !unplaceable.is_empty() {
            answer_error(&PlacementError::Infeasible(unplaceable));
            continue;
        }
        let replicas: u64 = req.workloads.iter().map(|w| u64::from(w.replicas)).sum();
        if req.clusters.len() > SOLVE_CLUSTERS
            || req.workloads.len() > SOLVE_WORKLOADS
            || replicas > SOLVE_REPLICAS
        {
            continue;
        }
        if rebalance {
            match placer().rebalance(req, None, now) {
                Ok(r) => drop(serde_json::to_vec(&r)),
                Err(e) => answer_error(&e),
            }
        } else {
            match placer().place(req, now) {
                Ok(r) => drop(serde_json::to_vec(&r)),
                Err(e) => answer_error(&e),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for format in [Format::Json, Format::Yaml] {
        match PlacementRequest::decode(data, format) {
            Ok(req) => drive(&req),
            Err(e) => answer_error(&e),
        }
    }
});
