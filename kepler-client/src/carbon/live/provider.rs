//! What a live carbon-intensity provider answers, how its HTTP calls fail, and the secrets
//! it authenticates with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};

use crate::carbon::IntensityPoint;

/// A live carbon-intensity service (Electricity Maps, WattTime, a carbon-aware-sdk WebAPI),
/// asked in its own zone names; every value it returns is gCO2e/kWh.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Short name, the `source` label of metrics (`electricitymaps`, `watttime`, …).
    fn name(&self) -> &'static str;

    /// What its intensity means (`lifecycle`, `direct`, `marginal`, `average`), shown next
    /// to every value.
    fn signal(&self) -> &str;

    /// The longest range one history call may ask for.
    fn max_history_span(&self) -> chrono::Duration;

    /// The most recent intensity (one or a few points ending at or after now).
    async fn latest(
        &self,
        zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError>;

    /// The provider's current forecast from about now on.
    async fn forecast(
        &self,
        zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError>;

    /// Past intensity over `[from, to)`, at most [`Provider::max_history_span`] long.
    async fn history(
        &self,
        zone: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<IntensityPoint>, FetchError>;
}

/// Why a call to a provider failed; [`FetchError::kind`] is the `kind` label of metrics.
/// Messages never hold a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// 401/403: the credentials were refused (or the plan does not cover the zone).
    #[error("HTTP {status} from {url}: credentials refused: {message}")]
    Unauthorized {
        /// The status.
        status: u16,
        /// The endpoint (no query string).
        url: String,
        /// The provider's message.
        message: String,
    },
    /// 429: too many requests; retry no earlier than `retry_after`.
    #[error("HTTP 429 from {url}: rate limited{}", .retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The endpoint.
        url: String,
        /// From the `Retry-After` header, when it has one.
        retry_after: Option<Duration>,
    },
    /// The provider does not know the zone (region, location).
    #[error("{url}: zone `{zone}` unknown to the provider: {message}")]
    UnknownZone {
        /// The endpoint.
        url: String,
        /// The provider's zone name asked for.
        zone: String,
        /// The provider's message.
        message: String,
    },
    /// Any other 4xx.
    #[error("HTTP {status} from {url}: {message}")]
    Client {
        /// The status.
        status: u16,
        /// The endpoint.
        url: String,
        /// The provider's message.
        message: String,
    },
    /// 5xx.
    #[error("HTTP {status} from {url}: {message}")]
    Server {
        /// The status.
        status: u16,
        /// The endpoint.
        url: String,
        /// The provider's message.
        message: String,
    },
    /// An answer that is not the documented shape (or holds invalid values).
    #[error("{url}: malformed answer: {message}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// What is wrong, with the JSON path where known.
        message: String,
    },
    /// A well-formed answer without a single point.
    #[error("{url}: no data for zone `{zone}`")]
    Empty {
        /// The endpoint.
        url: String,
        /// The provider's zone name.
        zone: String,
    },
    /// No answer within the configured timeout.
    #[error("{url}: no answer within {seconds} s")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The timeout.
        seconds: f64,
    },
    /// Connection, TLS or protocol failure.
    #[error("{url}: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// A credential file could not be read.
    #[error("{0}")]
    Credentials(String),
}

/// Every [`FetchError::kind`], for metrics exported at 0 before the first error.
pub const FETCH_ERROR_KINDS: [&str; 10] = [
    "unauthorized",
    "rate_limited",
    "unknown_zone",
    "client",
    "server",
    "malformed",
    "empty",
    "timeout",
    "transport",
    "credentials",
];

impl FetchError {
    /// A short label for metrics: one of [`FETCH_ERROR_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::UnknownZone { .. } => "unknown_zone",
            Self::Client { .. } => "client",
            Self::Server { .. } => "server",
            Self::Malformed { .. } => "malformed",
            Self::Empty { .. } => "empty",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Credentials(_) => "credentials",
        }
    }

    /// A malformed answer from `url`.
    pub fn malformed(url: &Url, message: impl Into<String>) -> Self {
        Self::Malformed {
            url: shown(url),
            message: message.into(),
        }
    }
}

/// A credential read from a file (a mounted Secret): its value never reaches `Debug`,
/// `Display`, logs or errors.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// The file's contents without surrounding whitespace; an empty file is an error.
    pub fn read(path: &Path, what: &str) -> Result<Self, FetchError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            FetchError::Credentials(format!("cannot read {what} file {}: {e}", path.display()))
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(FetchError::Credentials(format!(
                "{what} file {} is empty",
                path.display()
            )));
        }
        Ok(Self(value.to_string()))
    }

    /// A secret received from a provider (a session token).
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, to put in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A credential file, read again on every use so that a rotated Secret takes effect.
#[derive(Debug, Clone)]
pub struct SecretFile {
    /// The path.
    pub path: PathBuf,
    /// What it holds, for errors (`auth-token`, `password`).
    pub what: &'static str,
}

impl SecretFile {
    /// Reads it now.
    pub fn read(&self) -> Result<Secret, FetchError> {
        Secret::read(&self.path, self.what)
    }
}

/// `url` without its query string, user info or fragment: what errors and logs show.
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `t` as the providers' query parameters take it: RFC 3339, seconds, `Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `base` joined with `path` (which starts with `/`) and the query `pairs`.
pub fn endpoint(base: &Url, path: &str, pairs: &[(&str, String)]) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    }
    url
}

/// Sends `request` and returns the body of a 2xx answer; every other outcome becomes a
/// [`FetchError`] (the provider's message read from a JSON `message`, `error`, `detail` or
/// `title` field, else the body's start), with every value of `secrets` cut out of it — a
/// proxy or provider may quote the credentials it received.
pub async fn send(
    request: reqwest::RequestBuilder,
    url: &Url,
    timeout: Duration,
    secrets: &[&str],
) -> Result<(StatusCode, Vec<u8>), FetchError> {
    let at = shown(url);
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => {
            return Err(FetchError::Timeout {
                url: at,
                seconds: timeout.as_secs_f64(),
            });
        }
        Ok(Err(e)) if e.is_timeout() => {
            return Err(FetchError::Timeout {
                url: at,
                seconds: timeout.as_secs_f64(),
            });
        }
        Ok(Err(e)) => {
            return Err(FetchError::Transport {
                url: at,
                message: transport_message(&e),
            });
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => {
            return Err(FetchError::Timeout {
                url: at,
                seconds: timeout.as_secs_f64(),
            });
        }
        Ok(Err(e)) => {
            return Err(FetchError::Transport {
                url: at,
                message: transport_message(&e),
            });
        }
        Ok(Ok(b)) => b.to_vec(),
    };
    if status.is_success() {
        return Ok((status, body));
    }
    let message = scrub(provider_message(&body), secrets);
    Err(match status.as_u16() {
        401 | 403 => FetchError::Unauthorized {
            status: status.as_u16(),
            url: at,
            message,
        },
        429 => FetchError::RateLimited {
            url: at,
            retry_after,
        },
        s @ 400..=499 => FetchError::Client {
            status: s,
            url: at,
            message,
        },
        s => FetchError::Server {
            status: s,
            url: at,
            message,
        },
    })
}

/// A reqwest error's message and causes, without the URL (which is shown separately).
fn transport_message(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "request failed".to_string()
    } else {
        parts.join(": ")
    }
}

/// `text` with every occurrence of each (non-empty) secret replaced by `<redacted>`.
pub fn scrub(mut text: String, secrets: &[&str]) -> String {
    for s in secrets.iter().filter(|s| !s.trim().is_empty()) {
        if text.contains(s) {
            text = text.replace(s, "<redacted>");
        }
    }
    text
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    (at - Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// The provider's error message from a body: a JSON `message`, `error`, `detail` or
/// `title`, else the first 200 characters of the text.
pub fn provider_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error", "detail", "title"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                return clip(s);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        clip(text)
    }
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Parses a JSON body into `T`, naming the JSON path of the first problem.
pub fn json<T: serde::de::DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, FetchError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| FetchError::malformed(url, format!("at {}: {}", e.path(), e.inner())))
}

/// Sorted points with finite, non-negative values and positive durations; the first
/// invalid one is named.
pub fn checked(
    url: &Url,
    mut points: Vec<IntensityPoint>,
) -> Result<Vec<IntensityPoint>, FetchError> {
    for p in &points {
        if !(p.g_per_kwh.is_finite() && p.g_per_kwh >= 0.0) {
            return Err(FetchError::malformed(
                url,
                format!(
                    "intensity {} at {} is not a number of gCO2e/kWh >= 0",
                    p.g_per_kwh,
                    p.start.to_rfc3339()
                ),
            ));
        }
        if p.duration_s <= 0 {
            return Err(FetchError::malformed(
                url,
                format!("point at {} has no duration", p.start.to_rfc3339()),
            ));
        }
    }
    points.sort_by_key(|p| p.start);
    points.dedup_by_key(|p| p.start);
    Ok(points)
}

/// Points from samples, each holding until the next but at most `last_s` seconds (the
/// provider's granularity: a longer silence stays a gap).
pub fn stepwise(mut samples: Vec<(DateTime<Utc>, f64)>, last_s: i64) -> Vec<IntensityPoint> {
    samples.sort_by_key(|(t, _)| *t);
    samples.dedup_by_key(|(t, _)| *t);
    let mut out = Vec::with_capacity(samples.len());
    for (i, (t, g)) in samples.iter().enumerate() {
        let duration_s = samples
            .get(i + 1)
            .map_or(last_s, |(next, _)| (*next - *t).num_seconds().min(last_s));
        out.push(IntensityPoint {
            start: *t,
            duration_s,
            g_per_kwh: *g,
        });
    }
    out
}
