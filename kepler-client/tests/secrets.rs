//! Secrets in the telemetry configuration — the bearer token (file contents), a basic-auth
//! password in the URL, the CA file's contents — and in every live carbon source (tokens,
//! passwords, the session tokens made from them) never reach logs, `Debug` output or error
//! messages, against servers that answer 401 (quoting what they got) and closed ports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kepler_client::prom::{Endpoint, PromClient, redact_url};
use kepler_client::{PrometheusConfig, PrometheusSource, Refresher, TelemetrySource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-SECRET-4f9a1c";
const PASSWORD: &str = "pw-SECRET-77b2";
const CA_SECRET: &str = "CASECRETb64payloadXYZ";

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A server answering every request with 401 and a body quoting the Authorization header
/// it received (as a careless proxy might); returns its port.
async fn unauthorized_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let auth = req
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                    .unwrap_or("none")
                    .to_string();
                let body = format!("unauthorized ({auth})");
                let resp = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(url: String, token_file: &str) -> PrometheusConfig {
    PrometheusConfig {
        endpoint: Endpoint {
            url,
            bearer_token_file: Some(token_file.to_string()),
            timeout_s: 1.0,
            retries: 1,
            backoff_ms: 10,
            ..Endpoint::default()
        },
        ..PrometheusConfig::default()
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, PASSWORD, CA_SECRET] {
        assert!(
            !text.contains(secret),
            "{what} contains `{secret}`:\n{text}"
        );
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_debug_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_string_lossy().into_owned();

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let port_401 = unauthorized_server().await;
    let port_closed = closed_port();
    let mut shown = Vec::new();
    for port in [port_401, port_closed] {
        let url = format!("http://admin:{PASSWORD}@127.0.0.1:{port}");
        let cfg = config(url.clone(), &token_file);
        assert_clean("Debug of the config", &format!("{cfg:?}"));
        assert_clean("Debug of the config (pretty)", &format!("{cfg:#?}"));
        assert!(format!("{cfg:?}").contains(&format!("***@127.0.0.1:{port}")));
        let source = Arc::new(PrometheusSource::new(cfg).unwrap());
        assert_clean("Debug of the source", &format!("{source:?}"));
        assert_clean("describe()", &source.describe());
        let err = source
            .snapshot(chrono::Utc::now())
            .await
            .expect_err("Prometheus refuses or is absent");
        shown.push(err.to_string());
        assert_clean("error Display", &err.to_string());
        assert_clean("error Debug", &format!("{err:?}"));
        let refresher = Refresher::spawn(
            Arc::clone(&source) as Arc<dyn TelemetrySource>,
            Duration::from_millis(50),
        );
        let state = refresher.first_attempt().await;
        assert_clean("refresher state", &format!("{state:?}"));
        // A few more failing refreshes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_clean("refresher state", &format!("{:?}", refresher.latest()));
    }
    // The 401 server echoed the header it got: the token was sent (the test is live).
    assert!(
        shown[0].contains("401") || shown[0].to_lowercase().contains("unauthorized"),
        "{shown:?}"
    );
    let text = logs.text();
    assert!(
        text.contains("telemetry refresh failed"),
        "no refresh failure logged:\n{text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port_closed}")), "{text}");
    assert_clean("logs", &text);
}

#[test]
fn a_ca_file_that_is_not_pem_is_reported_by_path_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        format!("-----BEGIN CERTIFICATE-----\n{CA_SECRET}!!\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    let endpoint = Endpoint {
        url: format!("https://u:{PASSWORD}@prometheus.invalid"),
        ca_file: Some(ca.to_string_lossy().into_owned()),
        ..Endpoint::default()
    };
    let err = PromClient::new(endpoint.clone()).expect_err("not a certificate");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    assert_clean("CA error", &err.to_string());
    assert_clean("CA error Debug", &format!("{err:?}"));
    assert_clean("endpoint Debug", &format!("{endpoint:?}"));
}

#[test]
fn redact_url_hides_user_info_only() {
    assert_eq!(
        redact_url("https://u:p@host:9090/prom?x=a@b"),
        "https://***@host:9090/prom?x=a@b"
    );
    assert_eq!(redact_url("http://host:9090/a@b"), "http://host:9090/a@b");
    assert_eq!(redact_url("http://tok@host"), "http://***@host");
    assert_eq!(redact_url("http://host"), "http://host");
}

const EM_TOKEN: &str = "em-SECRET-c3d9e1";
const WT_PASSWORD: &str = "wt-SECRET-0b8f2a";
const SDK_TOKEN: &str = "sdk-SECRET-9e7d11";

/// A server answering every request with `status` and a body quoting the whole request
/// head it received, headers and all (a careless gateway); returns its port.
async fn echo_server(status: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).replace(['\r', '\n'], " ");
                let body = format!("{{\"message\": \"refused: {}\"}}", head.replace('"', "'"));
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// Every live carbon source (Electricity Maps' `auth-token`, WattTime's password and the
/// basic-auth header and session token made from it, a carbon-aware-sdk bearer token) keeps
/// its credentials out of logs, `Debug`, errors and status — against a server that quotes
/// every header back in its 401/403/500 answers, and against a closed port.
#[tokio::test]
async fn live_carbon_secrets_stay_out_of_logs_debug_and_errors() {
    use base64::Engine as _;
    use kepler_client::carbon::CarbonIntensitySource;
    use kepler_client::carbon::live::{
        CarbonAwareSdkConfig, ElectricityMapsConfig, LiveCarbon, WattTimeConfig,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let em_token = file("em-token", EM_TOKEN);
    let wt_user = file("wt-user", "ecoplace");
    let wt_password = file("wt-password", WT_PASSWORD);
    let sdk_token = file("sdk-token", SDK_TOKEN);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ecoplace:{WT_PASSWORD}"));
    let clean = |what: &str, text: &str| {
        assert_clean(what, text);
        for s in [EM_TOKEN, WT_PASSWORD, SDK_TOKEN, basic.as_str()] {
            assert!(!text.contains(s), "{what} contains `{s}`:\n{text}");
        }
    };

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut urls: Vec<String> = Vec::new();
    for status in [
        "401 Unauthorized",
        "403 Forbidden",
        "500 Internal Server Error",
    ] {
        urls.push(format!("http://127.0.0.1:{}", echo_server(status).await));
    }
    urls.push(format!("http://127.0.0.1:{}", closed_port()));
    let mut seen_errors = 0;
    for url in &urls {
        let clock: kepler_client::refresher::Clock = Arc::new(chrono::Utc::now);
        let em: ElectricityMapsConfig = serde_json::from_value(serde_json::json!({
            "zones": {"DE": "DE"}, "url": url, "tokenFile": em_token,
            "refresh": {"timeoutSeconds": 1},
        }))
        .unwrap();
        let wt: WattTimeConfig = serde_json::from_value(serde_json::json!({
            "zones": {"DE": "DE"}, "url": url, "loginUrl": format!("{url}/login"),
            "usernameFile": wt_user, "passwordFile": wt_password,
            "refresh": {"timeoutSeconds": 1},
        }))
        .unwrap();
        let sdk: CarbonAwareSdkConfig = serde_json::from_value(serde_json::json!({
            "zones": {"DE": "germanywestcentral"}, "url": url, "tokenFile": sdk_token,
            "refresh": {"timeoutSeconds": 1},
        }))
        .unwrap();
        clean("config Debug", &format!("{em:?} {wt:?} {sdk:?} {em:#?}"));
        let sources: Vec<LiveCarbon> = vec![
            em.build(clock.clone()).unwrap(),
            wt.build(clock.clone()).unwrap(),
            sdk.build(clock.clone()).unwrap(),
        ];
        for live in &sources {
            clean("source Debug", &format!("{live:?} {}", live.describe()));
            let _task = live.start().await;
            let status = live.status();
            clean("status", &format!("{status:?}"));
            assert!(status[0].last_error.is_some(), "{status:?}");
            seen_errors += 1;
            let err = live
                .intensity_at("DE", chrono::Utc::now())
                .await
                .unwrap_err();
            clean("stale error", &format!("{err} {err:?}"));
            let history = live
                .load_history(
                    chrono::Utc::now() - chrono::Duration::days(2),
                    chrono::Utc::now() - chrono::Duration::days(1),
                )
                .await
                .unwrap_err();
            clean("history error", &format!("{history} {history:?}"));
        }
    }
    assert_eq!(seen_errors, 12);
    let text = logs.text();
    assert!(
        text.contains("carbon refresh failed"),
        "no failure logged:\n{text}"
    );
    // The echo servers did quote the credentials back: the test is live.
    assert!(text.contains("refused: GET"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    clean("logs", &text);
}
