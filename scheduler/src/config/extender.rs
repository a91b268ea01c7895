//! `extender`: the HTTP server of the kube-scheduler extender (address, prefix, deadline,
//! body limit, TLS, plain probes).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checked, check_listen, field};

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtenderConfig {
    /// Listen address.
    pub listen: String,
    /// URL prefix of the verbs (`{prefix}/filter`, `{prefix}/prioritize`).
    pub prefix: String,
    /// Internal deadline per request, ms (below kube-scheduler's httpTimeout).
    pub deadline_ms: u64,
    /// Largest request body accepted, bytes (full NodeLists at 5 000 nodes are tens of MB).
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate and key, optionally requiring client certificates.
    pub tls: Option<TlsConfig>,
    /// Also serve `/healthz`, `/readyz` and `/metrics` (not the verbs) over plain HTTP on
    /// this address, e.g. `0.0.0.0:8081`: kubelet probes and Prometheus cannot present a
    /// client certificate when `tls.clientCaFile` is set.
    pub probes_listen: Option<String>,
}

impl Default for ExtenderConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8888".into(),
            prefix: "/scheduler".into(),
            deadline_ms: 250,
            max_body_bytes: 64 << 20,
            tls: None,
            probes_listen: None,
        }
    }
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) for client certificates: when set, every client must present a
    /// certificate chained to it (mutual TLS, kube-scheduler's `tlsConfig.certFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of these files: changed files that load replace the served
    /// ones without a restart (a set that does not load is logged, the current one kept);
    /// 0: read at start only.
    #[serde(default = "default_tls_reload_seconds")]
    pub reload_seconds: f64,
}

fn default_tls_reload_seconds() -> f64 {
    60.0
}

/// `extender.deadlineMs` must be below this: an extender deadline of a second or more
/// would hold kube-scheduler's scheduling cycle for every pod.
const MAX_DEADLINE_MS: u64 = 1000;

/// Longest `extender.tls.reloadSeconds`: a day.
const MAX_TLS_RELOAD_S: f64 = 86_400.0;

impl ExtenderConfig {
    /// Semantic checks; the field path below `extender`.
    pub fn check(&self) -> Checked {
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return field(
                "prefix",
                format!("`{}` must start and not end with /", self.prefix),
            );
        }
        check_listen("listen", &self.listen)?;
        if let Some(probes) = &self.probes_listen {
            check_listen("probesListen", probes)?;
        }
        if !(1..MAX_DEADLINE_MS).contains(&self.deadline_ms) {
            return field(
                "deadlineMs",
                format!(
                    "{} must be in 1..{MAX_DEADLINE_MS} ms (kube-scheduler waits at most its httpTimeout)",
                    self.deadline_ms
                ),
            );
        }
        if let Some(tls) = &self.tls
            && !(tls.reload_seconds.is_finite()
                && (0.0..=MAX_TLS_RELOAD_S).contains(&tls.reload_seconds))
        {
            return field(
                "tls.reloadSeconds",
                format!("must be in 0..={MAX_TLS_RELOAD_S} (0: no reload)"),
            );
        }
        Ok(())
    }
}
