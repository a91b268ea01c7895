//! Loopback fakes of the live carbon APIs ecoplace reads — Electricity Maps v3, WattTime v3
//! and a carbon-aware-sdk WebAPI — answering in each provider's documented JSON shapes,
//! with switchable failures (status codes, `429 Retry-After`, slow or malformed answers,
//! empty data) and a record of every call.
//!
//! Every fake serves the same truth: zone `z` at time `t` has `base(z) + 5 × hour(t)`
//! gCO2e/kWh (UTC hour of day), so a test can tell a time-zone slip from a unit slip.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{
    DateTime, Duration as Span, DurationRound, FixedOffset, SecondsFormat, Timelike, Utc,
};
use serde_json::{Value, json};

/// lbs per gram, for WattTime's lbs/MWh.
const POUND_G: f64 = 453.592_37;

/// Which API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Electricity Maps v3 (`auth-token` header).
    ElectricityMaps,
    /// WattTime v3 (basic-auth login, bearer token).
    WattTime,
    /// carbon-aware-sdk WebAPI (optional bearer token).
    CarbonAwareSdk,
}

/// How the fake answers the next data calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Documented success bodies.
    Ok,
    /// This HTTP status with the provider's error body.
    Status(u16),
    /// `429` with `Retry-After: <seconds>`.
    RateLimited(u64),
    /// Success, after this delay.
    Slow(Duration),
    /// `200` with a body cut in the middle.
    Malformed,
    /// `200` with no data points.
    Empty,
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Path.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// The `auth-token` or `authorization` header.
    pub auth: Option<String>,
    /// When it arrived.
    pub at: std::time::Instant,
}

struct Shared {
    api: Api,
    base: BTreeMap<String, f64>,
    mode: Mutex<Mode>,
    calls: Mutex<Vec<Call>>,
    secret: String,
    username: String,
    issued: Mutex<Vec<String>>,
    logins: AtomicU32,
}

/// A fake provider on `127.0.0.1:<ephemeral>`; stops when dropped.
pub struct FakeCarbonApi {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCarbonApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fake's truth in gCO2e/kWh: `base + 5 × hour of day (UTC)`.
pub fn truth(base: f64, t: DateTime<Utc>) -> f64 {
    base + 5.0 * f64::from(t.hour())
}

impl FakeCarbonApi {
    /// Starts a fake of `api` knowing `zones` (provider zone → base gCO2e/kWh), accepting
    /// `secret` (Electricity Maps token, WattTime password, carbon-aware-sdk bearer) and,
    /// for WattTime, the username `user`.
    pub async fn start(api: Api, zones: &[(&str, f64)], user: &str, secret: &str) -> Result<Self> {
        let shared = Arc::new(Shared {
            api,
            base: zones.iter().map(|(z, g)| (z.to_string(), *g)).collect(),
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::default(),
            secret: secret.to_string(),
            username: user.to_string(),
            issued: Mutex::default(),
            logins: AtomicU32::new(0),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, shared, task })
    }

    /// The truth of provider zone `zone` at `t`, gCO2e/kWh.
    pub fn truth(&self, zone: &str, t: DateTime<Utc>) -> f64 {
        truth(self.shared.base.get(zone).copied().unwrap_or(f64::NAN), t)
    }

    /// Switches how data calls are answered.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.shared.mode.lock() {
            *m = mode;
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Calls so far to a path ending in `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path.ends_with(suffix))
            .count()
    }

    /// WattTime logins so far.
    pub fn logins(&self) -> u32 {
        self.shared.logins.load(Ordering::SeqCst)
    }

    /// WattTime: forgets every issued token (as when they expire after 30 minutes).
    pub fn expire_tokens(&self) {
        if let Ok(mut t) = self.shared.issued.lock() {
            t.clear();
        }
    }
}

fn reply(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn error_body(api: Api, status: u16, message: &str) -> Value {
    match api {
        Api::ElectricityMaps => json!({"status": "error", "message": message}),
        Api::WattTime => json!({"error": message}),
        Api::CarbonAwareSdk => json!({
            "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "title": message,
            "status": status,
        }),
    }
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Span::hours(1)).unwrap_or(t)
}

fn parse_time(q: &BTreeMap<String, String>, key: &str) -> Option<DateTime<Utc>> {
    q.get(key)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn em_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn wt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// carbon-aware-sdk times in Central European Summer Time (+02:00), as a .NET
/// `DateTimeOffset` of a server in that zone renders them.
fn sdk_time(t: DateTime<Utc>) -> String {
    match FixedOffset::east_opt(2 * 3600) {
        Some(cest) => t
            .with_timezone(&cest)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        None => t.to_rfc3339_opts(SecondsFormat::Secs, false),
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    let auth = headers
        .get("auth-token")
        .or_else(|| headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut calls) = s.calls.lock() {
        calls.push(Call {
            path: path.clone(),
            query: query.clone(),
            auth: auth.clone(),
            at: std::time::Instant::now(),
        });
    }
    if s.api == Api::WattTime && path == "/login" {
        return watttime_login(&s, auth.as_deref());
    }
    let mode = s.mode.lock().map(|m| m.clone()).unwrap_or(Mode::Ok);
    match &mode {
        Mode::Status(code) => return reply(*code, error_body(s.api, *code, "internal error")),
        Mode::RateLimited(secs) => {
            let mut r = reply(429, error_body(s.api, 429, "too many requests"));
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        Mode::Slow(d) => tokio::time::sleep(*d).await,
        Mode::Malformed => {
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"zone\": \"DE\", \"carbonIntensity\": ",
            )
                .into_response();
        }
        Mode::Ok | Mode::Empty => {}
    }
    if let Some(denied) = authorised(&s, auth.as_deref()) {
        return denied;
    }
    let empty = mode == Mode::Empty;
    let now = Utc::now();
    match s.api {
        Api::ElectricityMaps => electricity_maps(&s, &path, &query, now, empty),
        Api::WattTime => watttime(&s, &path, &query, now, empty),
        Api::CarbonAwareSdk => carbon_aware_sdk(&s, &path, &query, now, empty),
    }
}

/// `None` when the call carries the credential.
fn authorised(s: &Shared, auth: Option<&str>) -> Option<Response> {
    let ok = match s.api {
        Api::ElectricityMaps => auth == Some(s.secret.as_str()),
        Api::WattTime => auth
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| s.issued.lock().is_ok_and(|i| i.iter().any(|x| x == t))),
        Api::CarbonAwareSdk => {
            s.secret.is_empty() || auth == Some(format!("Bearer {}", s.secret).as_str())
        }
    };
    (!ok).then(|| reply(401, error_body(s.api, 401, "unauthorized")))
}

fn watttime_login(s: &Shared, auth: Option<&str>) -> Response {
    let ok = auth
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(decode_basic)
        .is_some_and(|(u, p)| u == s.username && p == s.secret);
    if !ok {
        return reply(403, json!({"error": "forbidden"}));
    }
    let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("wt-session-{n}");
    if let Ok(mut i) = s.issued.lock() {
        i.push(token.clone());
    }
    reply(200, json!({"token": token}))
}

/// `user:password` from a base64 basic-auth credential.
fn decode_basic(b64: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn electricity_maps(
    s: &Shared,
    path: &str,
    q: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    empty: bool,
) -> Response {
    let zone = q.get("zone").cloned().unwrap_or_default();
    let Some(base) = s.base.get(&zone).copied() else {
        return reply(
            404,
            json!({"status": "error", "message": format!("Zone '{zone}' does not exist.")}),
        );
    };
    let factor = q
        .get("emissionFactorType")
        .map_or("lifecycle", String::as_str);
    let scale = if factor == "direct" { 0.8 } else { 1.0 };
    let value = |t: DateTime<Utc>| {
        json!({
            "zone": zone,
            "carbonIntensity": (truth(base, t) * scale).round(),
            "datetime": em_time(t),
            "updatedAt": em_time(now),
            "createdAt": em_time(t),
            "emissionFactorType": factor,
            "isEstimated": true,
            "estimationMethod": "TIME_SLICER_AVERAGE",
        })
    };
    let hour = hour_floor(now);
    match path {
        "/v3/carbon-intensity/latest" => reply(200, value(hour)),
        "/v3/carbon-intensity/forecast" => {
            let points: Vec<Value> = if empty {
                Vec::new()
            } else {
                (0..24).map(|h| value(hour + Span::hours(h))).collect()
            };
            reply(
                200,
                json!({"zone": zone, "forecast": points, "updatedAt": em_time(now)}),
            )
        }
        "/v3/carbon-intensity/past-range" => {
            let (Some(from), Some(to)) = (parse_time(q, "start"), parse_time(q, "end")) else {
                return reply(
                    400,
                    json!({"status": "error", "message": "start and end are required (ISO 8601)"}),
                );
            };
            if to - from > Span::days(10) {
                return reply(
                    400,
                    json!({"status": "error", "message": "the range must be at most 10 days"}),
                );
            }
            let mut points = Vec::new();
            let mut t = hour_floor(from);
            while t < to && !empty {
                if t >= from {
                    points.push(value(t));
                }
                t += Span::hours(1);
            }
            reply(200, json!({"zone": zone, "data": points}))
        }
        _ => reply(404, json!({"status": "error", "message": "not found"})),
    }
}

fn watttime(
    s: &Shared,
    path: &str,
    q: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    empty: bool,
) -> Response {
    let region = q.get("region").cloned().unwrap_or_default();
    let Some(base) = s.base.get(&region).copied() else {
        return reply(
            400,
            json!({"error": "Invalid region", "message": format!("region {region} is not a valid region")}),
        );
    };
    if q.get("signal_type").map(String::as_str) != Some("co2_moer") {
        return reply(400, json!({"error": "signal_type must be co2_moer"}));
    }
    let five = |t: DateTime<Utc>| t.duration_trunc(Span::minutes(5)).unwrap_or(t);
    let series = |from: DateTime<Utc>, to: DateTime<Utc>| -> Vec<Value> {
        let mut out = Vec::new();
        let mut t = five(from);
        while t < to && !empty {
            if t >= from {
                out.push(
                    json!({"point_time": wt_time(t), "value": truth(base, t) * 1000.0 / POUND_G}),
                );
            }
            t += Span::minutes(5);
        }
        out
    };
    let meta = |generated: DateTime<Utc>| {
        json!({
            "data_point_period_seconds": 300,
            "region": region,
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "model": {"date": "2026-03-01", "type": "binned_regression"},
            "generated_at_period_seconds": 300,
            "generated_at": wt_time(generated),
            "warnings": [],
        })
    };
    match path {
        "/v3/forecast" => {
            let hours: i64 = q
                .get("horizon_hours")
                .and_then(|h| h.parse().ok())
                .unwrap_or(24);
            let start = five(now);
            reply(
                200,
                json!({"data": series(start, start + Span::hours(hours)), "meta": meta(start)}),
            )
        }
        "/v3/historical" => {
            let (Some(from), Some(to)) = (parse_time(q, "start"), parse_time(q, "end")) else {
                return reply(400, json!({"error": "start and end are required"}));
            };
            if to - from > Span::days(32) {
                return reply(400, json!({"error": "at most 32 days per request"}));
            }
            reply(200, json!({"data": series(from, to), "meta": meta(now)}))
        }
        _ => reply(404, json!({"error": "not found"})),
    }
}

fn carbon_aware_sdk(
    s: &Shared,
    path: &str,
    q: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    empty: bool,
) -> Response {
    let location = q.get("location").cloned().unwrap_or_default();
    let Some(base) = s.base.get(&location).copied() else {
        return reply(
            400,
            json!({
                "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                "title": "ArgumentException",
                "status": 400,
                "detail": format!("Unknown location: '{location}'"),
            }),
        );
    };
    let hour = hour_floor(now);
    match path {
        "/emissions/forecasts/current" => {
            if empty {
                return reply(200, json!([]));
            }
            let data: Vec<Value> = (0..24)
                .map(|h| {
                    let t = hour + Span::hours(h);
                    json!({"location": location, "timestamp": sdk_time(t), "duration": 60, "value": truth(base, t)})
                })
                .collect();
            reply(
                200,
                json!([{
                    "generatedAt": sdk_time(hour),
                    "requestedAt": sdk_time(now),
                    "location": location,
                    "dataStartAt": sdk_time(hour),
                    "dataEndAt": sdk_time(hour + Span::hours(24)),
                    "windowSize": 0,
                    "optimalDataPoints": [data[0].clone()],
                    "forecastData": data,
                }]),
            )
        }
        "/emissions/bylocation" => {
            let (Some(from), Some(to)) = (parse_time(q, "time"), parse_time(q, "toTime")) else {
                return reply(
                    400,
                    json!({"title": "time and toTime are required", "status": 400}),
                );
            };
            let mut out = Vec::new();
            let mut t = hour_floor(from);
            while t < to && !empty {
                out.push(json!({"location": location, "time": sdk_time(t), "rating": truth(base, t), "duration": "01:00:00"}));
                t += Span::hours(1);
            }
            reply(200, json!(out))
        }
        _ => reply(404, json!({"title": "Not Found", "status": 404})),
    }
}
