//! A pod's effective requests and a node's allocatable, from Kubernetes quantities.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod as KubePod;

use super::quantity::{self, QuantityError};

/// A pod's effective requests: CPU cores, memory bytes, GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PodRequests {
    /// CPU, cores.
    pub cpu: f64,
    /// Memory, bytes.
    pub memory: f64,
    /// `nvidia.com/gpu` + `amd.com/gpu`.
    pub gpu: f64,
}

impl std::ops::Add for PodRequests {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            cpu: self.cpu + o.cpu,
            memory: self.memory + o.memory,
            gpu: self.gpu + o.gpu,
        }
    }
}

/// GPU resource names counted as GPUs.
const GPU_RESOURCES: [&str; 2] = ["nvidia.com/gpu", "amd.com/gpu"];

impl PodRequests {
    /// Sums the cpu, memory and GPU quantities of a request map; `what` names it in errors.
    pub fn from_map(m: &BTreeMap<String, String>, what: &str) -> Result<Self, QuantityError> {
        let mut r = Self::default();
        for (name, q) in m {
            let at = || format!("{what}[{name}]");
            match name.as_str() {
                "cpu" => r.cpu += quantity::parse(q, &at())?,
                "memory" => r.memory += quantity::parse(q, &at())?,
                n if GPU_RESOURCES.contains(&n) => r.gpu += quantity::parse(q, &at())?,
                _ => {}
            }
        }
        Ok(r)
    }

    /// The larger of each resource.
    pub fn max(self, o: Self) -> Self {
        Self {
            cpu: self.cpu.max(o.cpu),
            memory: self.memory.max(o.memory),
            gpu: self.gpu.max(o.gpu),
        }
    }
}

/// Sums cpu, memory and GPU quantities; unparsable ones are skipped with a warning.
pub(super) fn quantities<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> PodRequests {
    let mut r = PodRequests::default();
    for (k, v) in items {
        let slot = match k {
            "cpu" => &mut r.cpu,
            "memory" => &mut r.memory,
            n if GPU_RESOURCES.contains(&n) => &mut r.gpu,
            _ => continue,
        };
        match quantity::parse(v, k) {
            Ok(q) => *slot += q,
            Err(e) => tracing::warn!("{e}"),
        }
    }
    r
}

/// Effective requests of a pod object (containers, largest init container, overhead).
pub fn pod_requests(pod: &KubePod) -> PodRequests {
    let Some(spec) = pod.spec.as_ref() else {
        return PodRequests::default();
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|q| quantities(q.iter().map(|(k, v)| (k.as_str(), v.0.as_str()))))
            .unwrap_or_default()
    };
    let containers = spec
        .containers
        .iter()
        .fold(PodRequests::default(), |sum, c| sum + of(c));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .fold(containers, |sum, c| sum.max(of(c)));
    match &spec.overhead {
        Some(o) => init + quantities(o.iter().map(|(k, v)| (k.as_str(), v.0.as_str()))),
        None => init,
    }
}
