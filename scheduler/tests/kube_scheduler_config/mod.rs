//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1) as serde types with strict
//! field checking: the JSON names are the upstream Go struct tags of
//! k8s.io/kube-scheduler/config/v1 and k8s.io/component-base/config/v1alpha1, so a typo or a
//! field from another version fails to parse here before kube-scheduler rejects it.

// Most fields exist only so that strict parsing accepts them; the tests read a few.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;

/// The scheduler's configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    /// `kubescheduler.config.k8s.io/v1`.
    pub api_version: String,
    /// `KubeSchedulerConfiguration`.
    pub kind: String,
    /// Parallelism of the scheduling algorithm.
    pub parallelism: Option<i32>,
    /// Leader election of the replicas.
    #[serde(default)]
    pub leader_election: LeaderElectionConfiguration,
    /// Apiserver connection.
    pub client_connection: Option<ClientConnectionConfiguration>,
    /// pprof.
    pub enable_profiling: Option<bool>,
    /// Lock contention profiling.
    pub enable_contention_profiling: Option<bool>,
    /// Share of nodes scored.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Backoff of unschedulable pods, first retry.
    pub pod_initial_backoff_seconds: Option<i64>,
    /// Backoff of unschedulable pods, ceiling.
    pub pod_max_backoff_seconds: Option<i64>,
    /// Scheduling profiles, one per schedulerName.
    #[serde(default)]
    pub profiles: Vec<KubeSchedulerProfile>,
    /// HTTP extenders.
    #[serde(default)]
    pub extenders: Vec<Extender>,
    /// Wait for leadership before filling the informer caches.
    pub delay_cache_until_active: Option<bool>,
}

/// component-base LeaderElectionConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElectionConfiguration {
    /// Whether to elect a leader.
    pub leader_elect: Option<bool>,
    /// Go duration.
    pub lease_duration: Option<String>,
    /// Go duration.
    pub renew_deadline: Option<String>,
    /// Go duration.
    pub retry_period: Option<String>,
    /// `leases`.
    pub resource_lock: Option<String>,
    /// The Lease's name.
    pub resource_name: Option<String>,
    /// The Lease's namespace (default kube-system).
    pub resource_namespace: Option<String>,
}

/// component-base ClientConnectionConfiguration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientConnectionConfiguration {
    /// Path of a kubeconfig (empty: in-cluster).
    pub kubeconfig: Option<String>,
    /// Accept header.
    pub accept_content_types: Option<String>,
    /// Content type of requests.
    pub content_type: Option<String>,
    /// Client QPS.
    pub qps: Option<f32>,
    /// Client burst.
    pub burst: Option<i32>,
}

/// One scheduling profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeSchedulerProfile {
    /// Pods with this spec.schedulerName use the profile.
    pub scheduler_name: Option<String>,
    /// Share of nodes scored for this profile.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugins enabled and disabled per extension point.
    pub plugins: Option<Plugins>,
    /// Plugin arguments.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// Plugin sets per extension point.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plugins {
    /// PreEnqueue.
    pub pre_enqueue: Option<PluginSet>,
    /// QueueSort.
    pub queue_sort: Option<PluginSet>,
    /// PreFilter.
    pub pre_filter: Option<PluginSet>,
    /// Filter.
    pub filter: Option<PluginSet>,
    /// PostFilter.
    pub post_filter: Option<PluginSet>,
    /// PreScore.
    pub pre_score: Option<PluginSet>,
    /// Score.
    pub score: Option<PluginSet>,
    /// Reserve.
    pub reserve: Option<PluginSet>,
    /// Permit.
    pub permit: Option<PluginSet>,
    /// PreBind.
    pub pre_bind: Option<PluginSet>,
    /// Bind.
    pub bind: Option<PluginSet>,
    /// PostBind.
    pub post_bind: Option<PluginSet>,
    /// Every extension point a plugin implements.
    pub multi_point: Option<PluginSet>,
}

/// Enabled and disabled plugins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    /// Enabled, in order.
    #[serde(default)]
    pub enabled: Vec<Plugin>,
    /// Disabled (`*`: all defaults).
    #[serde(default)]
    pub disabled: Vec<Plugin>,
}

/// A plugin reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Plugin name.
    pub name: String,
    /// Score weight.
    pub weight: Option<i32>,
}

/// A plugin's arguments (a runtime.RawExtension: any object).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Plugin name.
    pub name: String,
    /// Arguments.
    pub args: Option<Value>,
}

/// An HTTP extender.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Extender {
    /// Base URL of the verbs.
    pub url_prefix: String,
    /// Verb of filter calls.
    pub filter_verb: Option<String>,
    /// Verb of preempt calls.
    pub preempt_verb: Option<String>,
    /// Verb of prioritize calls.
    pub prioritize_verb: Option<String>,
    /// Multiplier of the extender's scores.
    pub weight: Option<i64>,
    /// Verb of bind calls.
    pub bind_verb: Option<String>,
    /// HTTPS to the extender.
    #[serde(rename = "enableHTTPS")]
    pub enable_https: Option<bool>,
    /// TLS settings.
    pub tls_config: Option<ExtenderTlsConfig>,
    /// Go duration of each call's timeout (default 5s).
    pub http_timeout: Option<String>,
    /// Send node names only.
    pub node_cache_capable: Option<bool>,
    /// Extended resources the extender manages.
    #[serde(default)]
    pub managed_resources: Vec<ExtenderManagedResource>,
    /// Schedule without the extender when it fails.
    pub ignorable: Option<bool>,
}

/// An extender's TLS client settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtenderTlsConfig {
    /// Skip verification.
    pub insecure: Option<bool>,
    /// SNI name.
    pub server_name: Option<String>,
    /// Client certificate file.
    pub cert_file: Option<String>,
    /// Client key file.
    pub key_file: Option<String>,
    /// CA file.
    pub ca_file: Option<String>,
    /// Client certificate, base64.
    pub cert_data: Option<String>,
    /// Client key, base64.
    pub key_data: Option<String>,
    /// CA, base64.
    pub ca_data: Option<String>,
}

/// An extended resource an extender manages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtenderManagedResource {
    /// Resource name.
    pub name: String,
    /// Whether kube-scheduler ignores it in its own fit checks.
    pub ignored_by_scheduler: Option<bool>,
}

/// Parses a Go `time.Duration` string (`500ms`, `1m30s`) into seconds.
pub fn go_duration_s(text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not a Go duration");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}
