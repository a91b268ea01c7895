//! A pod's placement policy: config defaults, per-namespace overrides, then the pod's
//! `ecoplace.io/*` annotations. A malformed annotation never blocks the pod: the default
//! applies and a warning says which annotation and why.
//!
//! User regions match `topology.latencyMs` case-insensitively and take its spelling. A
//! region it does not know gives no latency term and no SLO (from an annotation, that is a
//! warning naming the known regions), so an unknown region can never turn nodes down.

use std::collections::BTreeMap;

use optimizer::Weights;

use optimizer::NO_SLO_MS;

use crate::config::{PolicyConfig, TopologyConfig};

/// Annotation: a weights preset (`balanced`, `carbon`, `energy`, `latency`).
pub const OBJECTIVE: &str = "ecoplace.io/objective";
/// Annotation: explicit weights, `carbon=3,energy=1,latency=1` (terms left out are 0).
pub const WEIGHTS: &str = "ecoplace.io/weights";
/// Annotation: latency SLO to the pod's user region, milliseconds.
pub const MAX_LATENCY_MS: &str = "ecoplace.io/max-latency-ms";
/// Annotation: the user region whose latency matters.
pub const USER_REGION: &str = "ecoplace.io/user-region";
/// Annotation: `true` to leave this pod alone (all nodes pass, neutral scores).
pub const SKIP: &str = "ecoplace.io/skip";

/// Every `ecoplace.io/*` annotation ecoplace reads.
pub const ANNOTATIONS: [&str; 5] = [OBJECTIVE, WEIGHTS, MAX_LATENCY_MS, USER_REGION, SKIP];

/// The policy applied to one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPolicy {
    /// Objective weights.
    pub weights: Weights,
    /// Latency SLO per user region, ms ([`NO_SLO_MS`]: a user region without an SLO, whose
    /// latency still counts in the latency term).
    pub latency_slo_ms: BTreeMap<String, f64>,
    /// Whether ecoplace should not influence this pod.
    pub skip: bool,
    /// Minimum allocatable memory a node must have, bytes (hard).
    pub min_memory_bytes: Option<f64>,
    /// Labels a node must carry with these values (hard).
    pub required_labels: BTreeMap<String, String>,
}

/// A malformed annotation: which one, its value, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationWarning {
    /// Annotation key.
    pub annotation: &'static str,
    /// Its value.
    pub value: String,
    /// Why it was ignored.
    pub reason: String,
}

impl std::fmt::Display for AnnotationWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "annotation {}=\"{}\" ignored: {}",
            self.annotation, self.value, self.reason
        )
    }
}

/// Resolves the policy of a pod in `namespace` with `annotations`; user regions are those
/// of `topology`.
pub fn resolve(
    config: &PolicyConfig,
    topology: &TopologyConfig,
    namespace: &str,
    annotations: &BTreeMap<String, String>,
) -> (PodPolicy, Vec<AnnotationWarning>) {
    let ns = config.namespaces.get(namespace);
    let preset = ns
        .and_then(|n| n.objective.as_deref())
        .unwrap_or(&config.objective);
    let mut policy = PodPolicy {
        weights: Weights::preset(preset).unwrap_or(Weights::BALANCED),
        latency_slo_ms: BTreeMap::new(),
        skip: ns.and_then(|n| n.skip).unwrap_or(false),
        min_memory_bytes: ns
            .and_then(|n| n.min_memory_bytes)
            .or(config.min_memory_bytes),
        required_labels: config.required_labels.clone(),
    };
    if let Some(n) = ns {
        policy.required_labels.extend(n.required_labels.clone());
    }
    let mut user_region = ns
        .and_then(|n| n.user_region.clone())
        .or_else(|| config.user_region.clone());
    let mut max_latency = ns.and_then(|n| n.max_latency_ms).or(config.max_latency_ms);
    let mut warnings = Vec::new();
    let mut warn = |annotation, value: &str, reason: String| {
        warnings.push(AnnotationWarning {
            annotation,
            value: value.to_string(),
            reason,
        })
    };

    if let Some(v) = annotations.get(OBJECTIVE) {
        match Weights::preset(v.trim()) {
            Ok(w) => policy.weights = w,
            Err(_) => warn(
                OBJECTIVE,
                v,
                "expected one of balanced, carbon, energy, latency".into(),
            ),
        }
    }
    if let Some(v) = annotations.get(WEIGHTS) {
        match Weights::parse(v) {
            Ok(w) => policy.weights = w,
            Err(e) => warn(WEIGHTS, v, e.to_string()),
        }
    }
    if let Some(v) = annotations.get(MAX_LATENCY_MS) {
        match v.trim().parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms > 0.0 => max_latency = Some(ms),
            _ => warn(
                MAX_LATENCY_MS,
                v,
                "expected a positive number of milliseconds".into(),
            ),
        }
    }
    if let Some(v) = annotations.get(USER_REGION) {
        match (v.trim(), topology.user_region(v)) {
            ("", _) => warn(USER_REGION, v, "empty region".into()),
            (_, Some(known)) => user_region = Some(known.to_string()),
            (_, None) => {
                warn(USER_REGION, v, unknown_region(topology));
                // The default policy applies: no latency term and no SLO.
                user_region = None;
                max_latency = None;
            }
        }
    } else if let Some(r) = user_region.take() {
        // From the namespace or config default (`ecoplace config check` warns when unknown).
        user_region = topology.user_region(&r).map(str::to_string);
    }
    if let Some(v) = annotations.get(SKIP) {
        match v.trim() {
            "true" => policy.skip = true,
            "false" => policy.skip = false,
            _ => warn(SKIP, v, "expected true or false".into()),
        }
    }
    match (user_region, max_latency) {
        (Some(region), ms) => {
            policy
                .latency_slo_ms
                .insert(region, ms.unwrap_or(NO_SLO_MS));
        }
        (None, Some(ms))
            if annotations.contains_key(MAX_LATENCY_MS)
                && !annotations.contains_key(USER_REGION) =>
        {
            warn(
                MAX_LATENCY_MS,
                &ms.to_string(),
                format!("no user region: set {USER_REGION} or policy.userRegion"),
            )
        }
        _ => {}
    }
    (policy, warnings)
}

/// Why a user region was not taken: the regions `topology.latencyMs` knows.
fn unknown_region(topology: &TopologyConfig) -> String {
    let known = topology.user_regions();
    if known.is_empty() {
        "unknown user region: topology.latencyMs configures none; no latency term, no SLO".into()
    } else {
        format!(
            "unknown user region (known: {}); no latency term, no SLO",
            known.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::NamespacePolicy;

    /// Nodes in `paris` and `frankfurt`; users in FR and DE.
    fn topology() -> TopologyConfig {
        let row = |fr: f64, de: f64| BTreeMap::from([("FR".into(), fr), ("DE".into(), de)]);
        TopologyConfig {
            latency_ms: BTreeMap::from([
                ("paris".into(), row(2.0, 9.0)),
                ("frankfurt".into(), row(9.0, 2.0)),
            ]),
            ..TopologyConfig::default()
        }
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_override_namespace_and_defaults() {
        let mut cfg = PolicyConfig::default();
        cfg.namespaces.insert(
            "batch".into(),
            NamespacePolicy {
                objective: Some("carbon".into()),
                ..NamespacePolicy::default()
            },
        );
        let (p, w) = resolve(&cfg, &topology(), "batch", &ann(&[]));
        assert_eq!(p.weights, Weights::CARBON);
        assert!(w.is_empty());
        let (p, w) = resolve(
            &cfg,
            &topology(),
            "batch",
            &ann(&[
                (WEIGHTS, "carbon=3, energy=1,latency=1"),
                (MAX_LATENCY_MS, "20"),
                (USER_REGION, "FR"),
            ]),
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.weights.carbon, 3.0);
        assert_eq!(p.latency_slo_ms.get("FR"), Some(&20.0));
    }

    #[test]
    fn malformed_annotations_fall_back_and_say_why() {
        let cfg = PolicyConfig::default();
        let (p, w) = resolve(
            &cfg,
            &topology(),
            "default",
            &ann(&[
                (OBJECTIVE, "greenest"),
                (WEIGHTS, "carbon=lots"),
                (MAX_LATENCY_MS, "-3"),
                (SKIP, "maybe"),
            ]),
        );
        assert_eq!(p.weights, Weights::BALANCED);
        assert!(!p.skip);
        let names: Vec<_> = w.iter().map(|w| w.annotation).collect();
        assert_eq!(names, [OBJECTIVE, WEIGHTS, MAX_LATENCY_MS, SKIP]);
        assert!(
            w[1].to_string().contains("`lots` is not a number"),
            "{}",
            w[1]
        );
    }

    #[test]
    fn user_regions_match_case_insensitively_and_unknown_ones_are_ignored() {
        let cfg = PolicyConfig::default();
        // `Fr` is the user region FR.
        let (p, w) = resolve(
            &cfg,
            &topology(),
            "default",
            &ann(&[(USER_REGION, "Fr"), (MAX_LATENCY_MS, "20")]),
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.latency_slo_ms, BTreeMap::from([("FR".into(), 20.0)]));
        // A region without an SLO still counts in the latency term, without a limit.
        let (p, w) = resolve(&cfg, &topology(), "default", &ann(&[(USER_REGION, "de")]));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.latency_slo_ms, BTreeMap::from([("DE".into(), NO_SLO_MS)]));
        // An unknown region: no latency term, no SLO, and a warning naming the known ones.
        let (p, w) = resolve(
            &cfg,
            &topology(),
            "default",
            &ann(&[(USER_REGION, "us-east"), (MAX_LATENCY_MS, "20")]),
        );
        assert!(p.latency_slo_ms.is_empty(), "{p:?}");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].annotation, USER_REGION);
        assert!(w[0].reason.contains("known: DE, FR"), "{}", w[0]);
        // A namespace's region is matched the same way; an unknown one is dropped silently
        // here (`ecoplace config check` names it).
        let mut cfg = PolicyConfig::default();
        cfg.namespaces.insert(
            "web".into(),
            NamespacePolicy {
                user_region: Some("fr".into()),
                max_latency_ms: Some(15.0),
                ..NamespacePolicy::default()
            },
        );
        let (p, _) = resolve(&cfg, &topology(), "web", &ann(&[]));
        assert_eq!(p.latency_slo_ms, BTreeMap::from([("FR".into(), 15.0)]));
        cfg.user_region = Some("mars".into());
        cfg.max_latency_ms = Some(5.0);
        let (p, w) = resolve(&cfg, &topology(), "default", &ann(&[]));
        assert!(p.latency_slo_ms.is_empty() && w.is_empty(), "{p:?} {w:?}");
    }
}
