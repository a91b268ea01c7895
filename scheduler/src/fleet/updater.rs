//! The background task that rebuilds the fleet view from node facts, telemetry and carbon,
//! and hands each view to a publish callback.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kepler_client::Refresher;
use kepler_client::carbon::CarbonIntensitySource;

use super::ViewSettings;
use super::metrics::ViewMetrics;
use super::outlook::outlook;
use super::view::{FleetView, NodeFact, ViewInputs, carbon_zone};
use super::watch::NodeSource;

/// What the view updater reads.
pub struct Inputs {
    /// Node facts.
    pub nodes: Arc<dyn NodeSource>,
    /// Telemetry.
    pub refresher: Arc<Refresher>,
    /// Carbon intensity.
    pub carbon: Arc<dyn CarbonIntensitySource>,
    /// What the view is built with.
    pub settings: Arc<ViewSettings>,
    /// The clock (the demo runs in 2020, inside its carbon data).
    pub clock: kepler_client::refresher::Clock,
    /// Zones whose missing intensity was logged (logged again only once it came back).
    pub carbon_logged: Mutex<BTreeSet<String>>,
}

/// One update: builds a view from `inputs`, sets `metrics` from it, hands it to `publish`.
pub async fn update(inputs: &Inputs, metrics: &ViewMetrics, publish: &impl Fn(FleetView)) {
    let view = build_view(inputs).await;
    metrics.observe(&view);
    publish(view);
}

/// [`update`] every `every`, forever (`publish`: the extender's, in `serve`).
pub async fn run_updater(
    inputs: Inputs,
    metrics: ViewMetrics,
    every: Duration,
    publish: impl Fn(FleetView) + Send + 'static,
) {
    loop {
        update(&inputs, &metrics, &publish).await;
        tokio::time::sleep(every).await;
    }
}

/// Logs a zone's intensity going missing (warning) and coming back (info) once each, not
/// on every view: `logged` holds the zones missing at the last view.
fn log_carbon_changes(logged: &Mutex<BTreeSet<String>>, missing: &BTreeMap<String, String>) {
    let Ok(mut logged) = logged.lock() else {
        return;
    };
    for (zone, e) in missing {
        if !logged.contains(zone) {
            tracing::warn!(zone = %zone, "no carbon intensity: {e}; nodes there get the mean of the known zones (all zones missing: decisions fail open, carbon_missing)");
        }
    }
    for zone in logged.iter().filter(|z| !missing.contains_key(*z)) {
        tracing::info!(zone = %zone, "carbon intensity available again");
    }
    *logged = missing.keys().cloned().collect();
}

/// One view from the current inputs.
pub async fn build_view(inputs: &Inputs) -> FleetView {
    let now = (inputs.clock)();
    let facts = inputs.nodes.facts();
    let view_inputs = view_inputs(
        facts.as_deref().unwrap_or_default(),
        inputs.refresher.latest().snapshot.clone(),
        inputs.carbon.as_ref(),
        &inputs.settings,
        now,
    )
    .await;
    log_carbon_changes(&inputs.carbon_logged, &view_inputs.carbon_missing);
    let mut view = FleetView::build(facts.as_deref(), view_inputs);
    // Checked positive and finite at load; a grace too long for a Duration never expires.
    let grace = Duration::try_from_secs_f64(inputs.settings.watch_stale_after_seconds)
        .unwrap_or(Duration::MAX);
    view.stale_watches = inputs
        .nodes
        .watch_failures()
        .into_iter()
        .filter(|f| f.failing_for > grace)
        .collect();
    view
}

/// The view's other inputs at `now`: the snapshot given, and the carbon outlook of every
/// zone the nodes in `facts` are in (zones without intensity are left out, and listed with
/// the source's error).
pub async fn view_inputs(
    facts: &[NodeFact],
    snapshot: Option<Arc<kepler_client::FleetSnapshot>>,
    source: &dyn CarbonIntensitySource,
    settings: &Arc<ViewSettings>,
    now: DateTime<Utc>,
) -> ViewInputs {
    let zones: BTreeSet<String> = facts
        .iter()
        .filter_map(|f| carbon_zone(&f.labels, &settings.topology))
        .collect();
    let horizon = chrono::Duration::seconds(settings.policy.expected_duration_seconds as i64);
    let mut carbon = HashMap::new();
    let mut carbon_missing = BTreeMap::new();
    for zone in zones {
        match outlook(source, &zone, now, now + horizon).await {
            Ok(o) => {
                carbon.insert(zone, o);
            }
            Err(e) => {
                carbon_missing.insert(zone, e.to_string());
            }
        }
    }
    ViewInputs {
        snapshot,
        carbon,
        carbon_missing,
        settings: Arc::clone(settings),
        built_at: now,
    }
}
