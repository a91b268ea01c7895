//! A thin, resilient client for the Prometheus HTTP API (Prometheus or Thanos Query).
//!
//! Adds what `prometheus-http-query` leaves to callers: bearer-token and TLS set-up,
//! a per-query timeout, bounded retries with exponential backoff, and Thanos' `dedup` /
//! `partial_response` parameters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_http_query::response::{Data, InstantVector, RangeVector};

use crate::matrix::MatrixBody;
use prometheus_http_query::{Client, Error as PromError};
use serde::{Deserialize, Serialize};

use crate::error::TelemetryError;

/// Connection settings for a Prometheus-compatible query endpoint.
///
/// Holds file paths, never file contents; `Debug` shows the URL with any user-info
/// (basic-auth credentials) replaced by `***`.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Endpoint {
    /// Base URL, e.g. `http://thanos-query.monitoring:9090`.
    pub url: String,
    /// File holding a bearer token (re-read on every query, so rotated tokens work).
    #[serde(alias = "bearer_token_file")]
    pub bearer_token_file: Option<String>,
    /// PEM file with extra CA certificates to trust.
    #[serde(alias = "ca_file")]
    pub ca_file: Option<String>,
    /// PEM file with a client certificate and its private key (mutual TLS).
    #[serde(alias = "client_cert_file")]
    pub client_cert_file: Option<String>,
    /// Timeout of one query attempt, in seconds.
    #[serde(rename = "timeoutSeconds", alias = "timeout_s")]
    pub timeout_s: f64,
    /// Extra attempts after a transient failure (unreachable, timeout).
    pub retries: u32,
    /// Backoff before the first retry, in milliseconds; doubles on each retry.
    #[serde(rename = "backoffMs", alias = "backoff_ms")]
    pub backoff_ms: u64,
    /// Thanos Query: deduplicate replicas (`dedup=true`); unset sends nothing.
    #[serde(alias = "thanos_dedup")]
    pub thanos_dedup: Option<bool>,
    /// Thanos Query: accept partial responses (`partial_response`); unset sends nothing.
    #[serde(alias = "thanos_partial_response")]
    pub thanos_partial_response: Option<bool>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_url(&self.url))
            .field("bearer_token_file", &self.bearer_token_file)
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("timeout_s", &self.timeout_s)
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .field("thanos_dedup", &self.thanos_dedup)
            .field("thanos_partial_response", &self.thanos_partial_response)
            .finish()
    }
}

/// `url` with its user-info (`user:password@`) replaced by `***@`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match userinfo(url) {
        Some(info) => url.replacen(&format!("{info}@"), "***@", 1),
        None => url.to_string(),
    }
}

/// The user-info of `url` (what sits between `scheme://` and the last `@` of the
/// authority), if any.
fn userinfo(url: &str) -> Option<&str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .map(|at| &authority[..at])
        .filter(|info| !info.is_empty())
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9090".into(),
            bearer_token_file: None,
            ca_file: None,
            client_cert_file: None,
            timeout_s: 5.0,
            retries: 2,
            backoff_ms: 200,
            thanos_dedup: None,
            thanos_partial_response: None,
        }
    }
}

/// A query client with timeouts, retries and authentication applied to every call.
#[derive(Clone)]
pub struct PromClient {
    client: Client,
    endpoint: Endpoint,
    /// The URL as shown in errors and logs (credentials redacted).
    shown_url: String,
}

impl std::fmt::Debug for PromClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint holds file paths only, never the token itself; its Debug redacts
        // credentials in the URL.
        f.debug_struct("PromClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, TelemetryError> {
    std::fs::read(path).map_err(|source| TelemetryError::Io {
        path: path.to_string(),
        source,
    })
}

fn config_err(field: &str, message: impl ToString) -> TelemetryError {
    TelemetryError::Config {
        field: field.to_string(),
        message: message.to_string(),
    }
}

impl PromClient {
    /// Builds a client; reads the CA and client certificate files once, here.
    pub fn new(endpoint: Endpoint) -> Result<Self, TelemetryError> {
        if !(endpoint.timeout_s.is_finite()
            && endpoint.timeout_s > 0.0
            && endpoint.timeout_s <= 3600.0)
        {
            return Err(config_err(
                "timeoutSeconds",
                "must be a positive number of seconds, at most 3600",
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(endpoint.timeout_s))
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(ca) = &endpoint.ca_file {
            let pem = read_file(ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_err("caFile", format!("{ca}: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(cert) = &endpoint.client_cert_file {
            let pem = read_file(cert)?;
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| config_err("clientCertFile", format!("{cert}: {e}")))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| config_err("url", format!("cannot build HTTP client: {e}")))?;
        let shown_url = redact_url(&endpoint.url);
        let client = Client::from(http, &endpoint.url)
            .map_err(|e| config_err("url", scrub(&endpoint.url, &format!("{shown_url}: {e}"))))?;
        Ok(Self {
            client,
            endpoint,
            shown_url,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Base URL with credentials redacted, for error messages.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    fn bearer(&self) -> Result<Option<String>, TelemetryError> {
        match &self.endpoint.bearer_token_file {
            None => Ok(None),
            Some(path) => {
                let raw = read_file(path)?;
                let token = String::from_utf8_lossy(&raw).trim().to_string();
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Instant query at `at`; the result must be an instant vector.
    pub async fn query_instant(
        &self,
        query: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<InstantVector>, TelemetryError> {
        match self.instant(query, at).await? {
            Data::Vector(v) => Ok(v),
            _ => Err(TelemetryError::UnexpectedResult {
                query: query.to_string(),
                expected: "an instant vector",
            }),
        }
    }

    /// Instant query of a range selector (`metric[5m]`) at `at`: the raw samples with
    /// their own timestamps, as the body received (parse it with [`MatrixBody::series`]).
    pub async fn query_samples(
        &self,
        query: &str,
        at: DateTime<Utc>,
    ) -> Result<MatrixBody, TelemetryError> {
        let per_try = self.per_try();
        self.with_retries(query, |tries| async move {
            let response = self
                .instant_builder(query, at)?
                .get_raw()
                .await
                .map_err(|e| self.map_error(query, e, per_try, tries))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| self.map_reqwest(query, &e, per_try, tries))?;
            if status.is_server_error() && !body.starts_with(b"{") {
                // A proxy or Thanos in trouble: worth retrying.
                return Err(TelemetryError::Unreachable {
                    url: self.shown_url.clone(),
                    message: format!("HTTP {status}"),
                });
            }
            Ok(MatrixBody::new(&self.shown_url, query, body.to_vec()))
        })
        .await
    }

    /// Range query over `[start, end]` with `step_s` seconds between points.
    pub async fn query_range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_s: f64,
    ) -> Result<Vec<RangeVector>, TelemetryError> {
        let per_try = self.per_try();
        let data = self
            .with_retries(query, |tries| async move {
                let mut b =
                    self.client
                        .query_range(query, start.timestamp(), end.timestamp(), step_s);
                if let Some(auth) = self.bearer()? {
                    b = b.header(reqwest::header::AUTHORIZATION, self.header_value(&auth)?);
                }
                if let Some(d) = self.endpoint.thanos_dedup {
                    b = b.query("dedup", d);
                }
                if let Some(p) = self.endpoint.thanos_partial_response {
                    b = b.query("partial_response", p);
                }
                let result = b.timeout(self.timeout_ms()).get().await;
                result
                    .map(|r| r.into_inner().0)
                    .map_err(|e| self.map_error(query, e, per_try, tries))
            })
            .await?;
        match data {
            Data::Matrix(m) => Ok(m),
            _ => Err(TelemetryError::UnexpectedResult {
                query: query.to_string(),
                expected: "a range vector (matrix)",
            }),
        }
    }

    async fn instant(&self, query: &str, at: DateTime<Utc>) -> Result<Data, TelemetryError> {
        let per_try = self.per_try();
        self.with_retries(query, |tries| async move {
            let result = self.instant_builder(query, at)?.get().await;
            result
                .map(|r| r.into_inner().0)
                .map_err(|e| self.map_error(query, e, per_try, tries))
        })
        .await
    }

    /// An instant query with authentication, Thanos flags and the per-query timeout.
    fn instant_builder(
        &self,
        query: &str,
        at: DateTime<Utc>,
    ) -> Result<prometheus_http_query::InstantQueryBuilder, TelemetryError> {
        let mut b = self.client.query(query).at(at.timestamp());
        if let Some(auth) = self.bearer()? {
            b = b.header(reqwest::header::AUTHORIZATION, self.header_value(&auth)?);
        }
        if let Some(d) = self.endpoint.thanos_dedup {
            b = b.query("dedup", d);
        }
        if let Some(p) = self.endpoint.thanos_partial_response {
            b = b.query("partial_response", p);
        }
        Ok(b.timeout(self.timeout_ms()))
    }

    fn per_try(&self) -> Duration {
        Duration::from_secs_f64(self.endpoint.timeout_s)
    }

    fn header_value(&self, auth: &str) -> Result<reqwest::header::HeaderValue, TelemetryError> {
        let mut v = reqwest::header::HeaderValue::from_str(auth).map_err(|_| {
            config_err(
                "bearerTokenFile",
                "token contains characters not allowed in an HTTP header",
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    fn timeout_ms(&self) -> i64 {
        (self.endpoint.timeout_s * 1000.0) as i64
    }

    /// Runs one attempt per call of `attempt` (given the attempt number), each under the
    /// per-query timeout, retrying transient failures with exponential backoff.
    async fn with_retries<T, F, Fut>(&self, query: &str, attempt: F) -> Result<T, TelemetryError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, TelemetryError>>,
    {
        let per_try = self.per_try();
        let mut backoff = Duration::from_millis(self.endpoint.backoff_ms);
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match tokio::time::timeout(per_try, attempt(tries)).await {
                Err(_) => Err(TelemetryError::Timeout {
                    url: self.shown_url.clone(),
                    query: query.to_string(),
                    after: per_try,
                    attempts: tries,
                }),
                Ok(r) => r,
            };
            match outcome {
                Ok(result) => return Ok(result),
                Err(e) if e.is_transient() && tries <= self.endpoint.retries => {
                    tracing::debug!(error = %e, attempt = tries, "retrying Prometheus query");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn map_reqwest(
        &self,
        query: &str,
        e: &reqwest::Error,
        after: Duration,
        tries: u32,
    ) -> TelemetryError {
        let message = scrub(&self.endpoint.url, &error_chain(e));
        if e.is_timeout() || message.contains("timed out") {
            TelemetryError::Timeout {
                url: self.shown_url.clone(),
                query: query.to_string(),
                after,
                attempts: tries,
            }
        } else {
            TelemetryError::Unreachable {
                url: self.shown_url.clone(),
                message,
            }
        }
    }

    fn map_error(&self, query: &str, e: PromError, after: Duration, tries: u32) -> TelemetryError {
        let url = self.shown_url.clone();
        match e {
            PromError::Prometheus(p) if p.is_timeout() => TelemetryError::Timeout {
                url,
                query: query.to_string(),
                after,
                attempts: tries,
            },
            PromError::Prometheus(p) => TelemetryError::Query {
                url,
                query: query.to_string(),
                message: scrub(&self.endpoint.url, &p.to_string()),
            },
            PromError::Client(c) => {
                let message = scrub(&self.endpoint.url, &error_chain(&c));
                if message.contains("timed out") {
                    TelemetryError::Timeout {
                        url,
                        query: query.to_string(),
                        after,
                        attempts: tries,
                    }
                } else if message.contains("decod") || message.contains("expected") {
                    TelemetryError::Query {
                        url,
                        query: query.to_string(),
                        message: format!("malformed response: {message}"),
                    }
                } else {
                    TelemetryError::Unreachable { url, message }
                }
            }
            other => TelemetryError::Unreachable {
                url,
                message: scrub(&self.endpoint.url, &other.to_string()),
            },
        }
    }
}

/// `message` with the user-info of `url` (and its password, however it was percent-decoded
/// or re-encoded) replaced by `***`: HTTP client errors quote the request URL.
fn scrub(url: &str, message: &str) -> String {
    let Some(info) = userinfo(url) else {
        return message.to_string();
    };
    let mut out = message.replace(info, "***");
    if let Some((_, password)) = info.split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
