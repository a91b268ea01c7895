//! One extender decision: the pod's policy, its candidates as optimizer targets, one
//! `score_targets` call, and per-node verdicts (pass/fail with reasons, 0..=10 score).

use axum::body::Bytes;
use std::borrow::Cow;

use optimizer::cost::Infeasibility;
use optimizer::{Objectives, PowerModel, Resources, Target, Workload, score_targets};

use super::reply::{self, Failed, Passing, Reply};
use super::wire::{Candidates, Request, write_priorities};
use crate::fleet::policy::{self, AnnotationWarning, PodPolicy};
use crate::fleet::{FailOpen, FleetView, target};

/// Score given to nodes ecoplace knows nothing about, and to every node when failing open.
pub const NEUTRAL_SCORE: i64 = 5;

/// One node's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict<'a> {
    /// Node name (borrowed from the request).
    pub name: &'a str,
    /// Whether the name can go back into JSON unescaped (it had no escape sequence).
    pub verbatim: bool,
    /// Whether ecoplace knew the node (unknown nodes pass with a neutral score).
    pub known: bool,
    /// Why it fails (empty: it passes).
    pub reasons: Vec<String>,
    /// Whether preemption cannot help (anything but a capacity shortfall).
    pub unresolvable: bool,
    /// 0..=10.
    pub score: i64,
    /// Marginal cost of one replica there, in units (energy Wh, carbon g, latency ms).
    pub units: Option<Objectives>,
}

impl<'a> Verdict<'a> {
    /// A node ecoplace has no opinion on: it passes with the neutral score.
    fn neutral((name, verbatim): (&'a str, bool)) -> Self {
        Self {
            name,
            verbatim,
            known: false,
            reasons: Vec::new(),
            unresolvable: false,
            score: NEUTRAL_SCORE,
            units: None,
        }
    }
}

/// The outcome of one call.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Per-candidate verdicts, in request order.
    pub verdicts: Vec<Verdict<'a>>,
    /// Why the decision failed open, if it did (all pass, neutral scores).
    pub fail_open: Option<FailOpen>,
    /// Whether the pod asked to be left alone.
    pub skipped: bool,
    /// Malformed annotations that were ignored.
    pub warnings: Vec<AnnotationWarning>,
    /// Objective preset or weights used, for logs.
    pub policy: Option<PodPolicy>,
}

impl<'a> Decision<'a> {
    /// Every candidate passes with the neutral score.
    fn neutral(names: Vec<(&'a str, bool)>, fail_open: Option<FailOpen>) -> Self {
        Self {
            verdicts: names.into_iter().map(Verdict::neutral).collect(),
            fail_open,
            skipped: false,
            warnings: Vec::new(),
            policy: None,
        }
    }

    /// The best passing known node and the carbon (g over the pod's expected lifetime) it
    /// saves against the median passing node, if any node was scored.
    pub fn best(&self) -> Option<(&Verdict<'a>, f64)> {
        let passing = || {
            self.verdicts
                .iter()
                .filter(|v| v.known && v.reasons.is_empty() && v.units.is_some())
        };
        let best = passing().max_by(|a, b| a.score.cmp(&b.score).then(b.name.cmp(a.name)))?;
        let mut grams: Vec<f64> = passing().map(carbon).collect();
        let mid = grams.len() / 2;
        let (_, &mut median, _) = grams.select_nth_unstable_by(mid, f64::total_cmp);
        Some((best, (median - carbon(best)).max(0.0)))
    }

    /// The filter reply; `Nodes` requests get their passing nodes back as full objects,
    /// as slices of the request body (`request`, the body `req` was decoded from).
    pub fn filter_reply(
        &self,
        req: &Request<'_>,
        request: &Bytes,
    ) -> Result<Reply, serde_json::Error> {
        let mut failed = Failed::default();
        for v in self.verdicts.iter().filter(|v| !v.reasons.is_empty()) {
            let why = format!("ecoplace: {}", v.reasons.join("; "));
            let map = match v.unresolvable {
                true => &mut failed.unresolvable,
                false => &mut failed.resolvable,
            };
            map.insert(v.name, why);
        }
        let passes = |v: &Verdict| v.reasons.is_empty();
        let passing = match &req.candidates {
            Candidates::Names(_) => Passing::Names(
                self.verdicts
                    .iter()
                    .filter(|v| passes(v))
                    .map(|v| (v.name, v.verbatim))
                    .collect(),
            ),
            // Verdicts are in request order, one per Node object; consecutive passing
            // nodes go back as one range (all of them, when every node passes).
            Candidates::Nodes(_, places) => {
                let Some(places) = places else {
                    return Err(serde::ser::Error::custom(
                        "filter reply: the request was decoded without the Nodes' places",
                    ));
                };
                let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
                let mut extends = false;
                for (span, v) in places.iter().zip(&self.verdicts) {
                    match (passes(v), extends, runs.last_mut()) {
                        (true, true, Some(run)) => run.end = span.end,
                        (true, _, _) => runs.push(span.clone()),
                        (false, _, _) => {}
                    }
                    extends = passes(v);
                }
                Passing::Nodes(runs)
            }
        };
        reply::filter(request, passing, &failed)
    }

    /// Writes the prioritize reply (a bare array of `HostPriority`) into `out`.
    pub fn write_priorities(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_priorities(
            out,
            self.verdicts.iter().map(|v| (v.name, v.verbatim, v.score)),
        )
    }
}

fn carbon(v: &Verdict) -> f64 {
    v.units.map_or(0.0, |u| u.carbon_g)
}

/// The candidates' names, each with whether it may be written back verbatim.
fn candidate_names<'a>(req: &'a Request<'_>) -> Vec<(&'a str, bool)> {
    match &req.candidates {
        Candidates::Names(n) => n
            .iter()
            .map(|n| (n.as_str(), matches!(n.0, Cow::Borrowed(_))))
            .collect(),
        Candidates::Nodes(n, _) => n
            .iter()
            .map(|n| (n.metadata.name.as_str(), false))
            .collect(),
    }
}

/// Decides filter verdicts and scores for `req` on `view`.
pub fn decide<'a>(view: &FleetView, req: &'a Request<'_>, power: &dyn PowerModel) -> Decision<'a> {
    let names = candidate_names(req);
    let config = &view.inputs.settings;
    let (policy, warnings) = policy::resolve(
        &config.policy,
        &config.topology,
        &req.pod.metadata.namespace,
        &req.pod.metadata.annotations,
    );
    if policy.skip {
        let mut d = Decision::neutral(names, None);
        d.skipped = true;
        d.warnings = warnings;
        return d;
    }
    if let Some(reason) = view.fail_open {
        let mut d = Decision::neutral(names, Some(reason));
        d.warnings = warnings;
        return d;
    }
    let built: Vec<Target>;
    let mut known: Vec<&Target> = Vec::with_capacity(names.len());
    let mut slot: Vec<Option<usize>> = Vec::with_capacity(names.len());
    match &req.candidates {
        Candidates::Names(_) => {
            let stale = if !view.nodes_synced {
                Some(FailOpen::NodesNotSynced)
            } else if !view.stale_watches.is_empty() {
                Some(FailOpen::NodesStale)
            } else {
                None
            };
            if stale.is_some() {
                let mut d = Decision::neutral(names, stale);
                d.warnings = warnings;
                return d;
            }
            for (n, _) in &names {
                slot.push(view.index.get(*n).map(|&i| {
                    known.push(&view.targets[i]);
                    known.len() - 1
                }));
            }
        }
        Candidates::Nodes(nodes, _) => {
            built = nodes
                .iter()
                .map(|n| {
                    let allocated = view
                        .allocated
                        .get(&n.metadata.name)
                        .copied()
                        .unwrap_or_default();
                    target(&n.fact(allocated), &view.inputs)
                })
                .collect();
            known = built.iter().collect();
            slot = (0..built.len()).map(Some).collect();
        }
    }
    let requests = req.requests;
    let workload = Workload {
        name: req.pod.key(),
        requests: Resources::new(requests.cpu, requests.memory, requests.gpu),
        replicas: 1,
        expected_duration_s: config.policy.expected_duration_seconds,
        latency_slo_ms: policy.latency_slo_ms.clone(),
        ..Workload::default()
    };
    let at = view.inputs.built_at;
    let scores = match score_targets(&workload, &known, &policy.weights, at, power) {
        Ok(s) => s,
        Err(_) => return Decision::neutral(names, Some(FailOpen::DecisionFailed)),
    };
    let has_hard_rules = policy.min_memory_bytes.is_some() || !policy.required_labels.is_empty();
    let verdicts = names
        .into_iter()
        .zip(slot)
        .map(|((name, verbatim), slot)| match slot {
            None => Verdict::neutral((name, verbatim)),
            Some(i) => {
                let s = &scores[i];
                let t = known[i];
                let mut reasons: Vec<String> = s.reasons.iter().map(|r| r.to_string()).collect();
                let capacity_only = s
                    .reasons
                    .iter()
                    .all(|r| matches!(r, Infeasibility::Capacity { .. }));
                let hard = if has_hard_rules {
                    hard_policy(&policy, t)
                } else {
                    Vec::new()
                };
                let unresolvable = !hard.is_empty() || !capacity_only;
                reasons.extend(hard);
                let score = if reasons.is_empty() { s.rounded() } else { 0 };
                Verdict {
                    name,
                    verbatim,
                    known: true,
                    reasons,
                    unresolvable,
                    score,
                    units: Some(s.units),
                }
            }
        })
        .collect();
    Decision {
        verdicts,
        fail_open: None,
        skipped: false,
        warnings,
        policy: Some(policy),
    }
}

/// Node-level hard rules of the pod's policy (preemption cannot fix these).
fn hard_policy(policy: &PodPolicy, t: &Target) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(min) = policy.min_memory_bytes
        && t.capacity.memory < min
    {
        why.push(format!(
            "allocatable memory {:.1} GiB < policy minimum {:.1} GiB",
            t.capacity.memory / f64::from(1u32 << 30),
            min / f64::from(1u32 << 30)
        ));
    }
    for (k, v) in &policy.required_labels {
        if t.labels.get(k) != Some(v) {
            why.push(format!("label {k}={v} required"));
        }
    }
    why
}
