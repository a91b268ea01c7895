//! Semantic checks of a decoded request: every bad field is reported with its path.

use std::collections::HashSet;

use optimizer::Weights;

use super::error::FieldError;
use super::request::{PlacementRequest, ResourcesSpec, WeightsSpec};

/// Collects field errors.
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `v` must be finite and ≥ 0.
    fn non_negative(&mut self, field: impl Into<String>, v: f64) {
        if !(v.is_finite() && v >= 0.0) {
            self.push(field, format!("{v} must be a finite number ≥ 0"));
        }
    }

    /// `v` must be finite and > 0.
    fn positive(&mut self, field: impl Into<String>, v: f64) {
        if !(v.is_finite() && v > 0.0) {
            self.push(field, format!("{v} must be a finite number > 0"));
        }
    }

    fn resources(&mut self, field: &str, r: &ResourcesSpec) {
        self.non_negative(format!("{field}.cpu"), r.cpu.0);
        self.non_negative(format!("{field}.memory"), r.memory.0);
        self.non_negative(format!("{field}.gpu"), r.gpu.0);
    }
}

/// The weights a request asks for, or the error at `weights`.
pub fn weights(spec: &WeightsSpec) -> Result<Weights, FieldError> {
    let err = |message: String| FieldError {
        field: "weights".into(),
        message,
    };
    match spec {
        WeightsSpec::Preset(name) => Weights::preset(name).map_err(|e| err(e.to_string())),
        WeightsSpec::Explicit(w) => {
            let all = [w.carbon, w.energy, w.latency, w.migration];
            if all.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(err("every weight must be a finite number ≥ 0".into()));
            }
            if all.iter().sum::<f64>() <= 0.0 {
                return Err(err("at least one weight must be positive".into()));
            }
            Ok(Weights {
                carbon: w.carbon,
                energy: w.energy,
                latency: w.latency,
                migration: w.migration,
            })
        }
    }
}

/// Every semantic error of `req`; `rebalance` also requires each workload's `current`
/// placement to hold exactly its replicas.
pub fn check(req: &PlacementRequest, rebalance: bool) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    if let Err(f) = weights(&req.weights) {
        e.0.push(f);
    }
    if let Some(t) = req.solver.time_limit_seconds {
        e.positive("solver.timeLimitSeconds", t);
    }
    if let Some(g) = req.solver.mip_gap
        && !(g.is_finite() && (0.0..1.0).contains(&g))
    {
        e.push("solver.mipGap", format!("{g} must be in 0..1"));
    }
    if let Some(g) = req.min_gain {
        e.non_negative("minGain", g);
    }
    if req.clusters.is_empty() {
        e.push("clusters", "at least one cluster is needed");
    }
    if req.workloads.is_empty() {
        e.push("workloads", "at least one workload is needed");
    }
    let mut names = HashSet::new();
    for (i, c) in req.clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        if c.name.trim().is_empty() {
            e.push(format!("{at}.name"), "must not be empty");
        } else if !names.insert(c.name.as_str()) {
            e.push(
                format!("{at}.name"),
                format!("duplicate cluster `{}`", c.name),
            );
        }
        e.resources(&format!("{at}.capacity"), &c.capacity);
        e.resources(&format!("{at}.allocated"), &c.allocated);
        e.non_negative(format!("{at}.power.idleWatts"), c.power.idle_watts);
        e.non_negative(format!("{at}.power.maxWatts"), c.power.max_watts);
        if c.power.max_watts < c.power.idle_watts {
            e.push(
                format!("{at}.power.maxWatts"),
                format!(
                    "{} W is below idleWatts {} W",
                    c.power.max_watts, c.power.idle_watts
                ),
            );
        }
        if let Some(u) = c.power.utilisation
            && !(u.is_finite() && (0.0..=1.0).contains(&u))
        {
            e.push(
                format!("{at}.power.utilisation"),
                format!("{u} must be in 0..=1"),
            );
        }
        match c.carbon.g_per_kwh {
            Some(g) => e.non_negative(format!("{at}.carbon.gPerKwh"), g),
            None => e.push(
                format!("{at}.carbon.gPerKwh"),
                "required: give it, or a `zone` the server's carbon source knows",
            ),
        }
        for (k, p) in c.carbon.forecast.iter().enumerate() {
            e.non_negative(format!("{at}.carbon.forecast[{k}].gPerKwh"), p.g_per_kwh);
            if k > 0 && c.carbon.forecast[k - 1].start >= p.start {
                e.push(
                    format!("{at}.carbon.forecast[{k}].start"),
                    "forecast points must be in increasing time order",
                );
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (region, &ms) in &c.latency_ms {
            e.non_negative(format!("{at}.latencyMs.{region}"), ms);
            if let Some(twin) = seen.iter().find(|s| s.eq_ignore_ascii_case(region)) {
                e.push(
                    format!("{at}.latencyMs.{region}"),
                    format!("`{region}` and `{twin}` differ only by case (region names match case-insensitively)"),
                );
            }
            seen.push(region);
        }
    }
    let mut workloads = HashSet::new();
    for (i, w) in req.workloads.iter().enumerate() {
        let at = format!("workloads[{i}]");
        if w.name.trim().is_empty() {
            e.push(format!("{at}.name"), "must not be empty");
        } else if !workloads.insert(w.name.as_str()) {
            e.push(
                format!("{at}.name"),
                format!("duplicate workload `{}`", w.name),
            );
        }
        if w.replicas < 1 {
            e.push(format!("{at}.replicas"), "must be at least 1");
        }
        e.resources(&format!("{at}.requests"), &w.requests);
        let regions = super::mapping::region_spellings(req);
        for (region, &slo) in &w.latency_slo_ms {
            e.positive(format!("{at}.latencySloMs.{region}"), slo);
            if !regions.iter().any(|r| r.eq_ignore_ascii_case(region)) {
                let known = match regions.is_empty() {
                    true => "no cluster has a latencyMs".to_string(),
                    false => format!("known: {}", regions.join(", ")),
                };
                e.push(
                    format!("{at}.latencySloMs.{region}"),
                    format!("no cluster has a latency from `{region}` ({known})"),
                );
            }
        }
        for (list, field) in [
            (&w.allowed_clusters, "allowedClusters"),
            (&w.denied_clusters, "deniedClusters"),
        ] {
            for (k, name) in list.iter().enumerate() {
                if !names.contains(name.as_str()) {
                    e.push(
                        format!("{at}.{field}[{k}]"),
                        format!("unknown cluster `{name}`"),
                    );
                }
            }
        }
        if w.max_per_cluster == Some(0) {
            e.push(format!("{at}.maxPerCluster"), "must be at least 1");
        }
        if let Some(n) = w.number_of_clusters {
            if n == 0 {
                e.push(format!("{at}.numberOfClusters"), "must be at least 1");
            } else if n > w.replicas {
                e.push(
                    format!("{at}.numberOfClusters"),
                    format!(
                        "{n} clusters need at least {n} replicas, not {}",
                        w.replicas
                    ),
                );
            }
        }
        if let Some(d) = w.expected_duration_seconds {
            e.positive(format!("{at}.expectedDurationSeconds"), d);
        }
        if let Some(q) = w.expected_cpu {
            e.non_negative(format!("{at}.expectedCpu"), q.0);
        }
        for name in w.current.keys() {
            if !names.contains(name.as_str()) {
                e.push(
                    format!("{at}.current.{name}"),
                    format!("unknown cluster `{name}`"),
                );
            }
        }
        if rebalance {
            let running: u64 = w.current.values().map(|&k| u64::from(k)).sum();
            if running != u64::from(w.replicas) {
                e.push(
                    format!("{at}.current"),
                    format!(
                        "holds {running} replicas but replicas is {} (rebalance moves running replicas, it does not scale)",
                        w.replicas
                    ),
                );
            }
        }
    }
    e.0
}
