//! The extender over real HTTPS on 127.0.0.1 with a test PKI (rcgen): plain TLS, and with
//! `extender.tls.clientCaFile` a client certificate chained to it is required (none, or one
//! from another CA, is refused at the handshake). Bad files give errors naming the field.
//! One test runs the `ecoplace serve` binary itself with such a configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use scheduler::config::{Config, TlsConfig};
use scheduler::server::tls;
use tempfile::TempDir;

const NAMES: &str = include_str!("fixtures/args-names.json");

/// A CA that signs the server and client leaves of one test.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate and its key (both PEM) signed by `issuer`.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Files of one test: a server CA and server leaf for 127.0.0.1/localhost, a client CA with
/// a client leaf, and a client leaf from an unrelated CA.
struct Pki {
    dir: TempDir,
    server_ca: String,
    client: String,
    rogue_client: String,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = ca("ecoplace test server CA");
        let client_ca = ca("kube-scheduler test client CA");
        let rogue_ca = ca("someone else's CA");
        let (cert, key) = leaf(
            &server_ca,
            "ecoplace",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &client_ca,
            "kube-scheduler",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let rogue = leaf(
            &rogue_ca,
            "kube-scheduler",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let pki = Self {
            dir,
            server_ca: server_ca.pem(),
            client: format!("{}{}", client.0, client.1),
            rogue_client: format!("{}{}", rogue.0, rogue.1),
        };
        pki.write("server.crt", &cert);
        pki.write("server.key", &key);
        pki.write("client-ca.crt", &client_ca.pem());
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tls(&self, client_ca: bool) -> TlsConfig {
        TlsConfig {
            cert_file: self.path("server.crt"),
            key_file: self.path("server.key"),
            client_ca_file: client_ca.then(|| self.path("client-ca.crt")),
            reload_seconds: 0.0,
        }
    }

    /// An HTTPS client trusting only the server CA, presenting `identity` (cert + key PEM).
    fn client(&self, identity: Option<&str>) -> reqwest::Client {
        https_client(&self.server_ca, identity)
    }
}

/// An HTTPS client trusting only `ca_pem`, presenting `identity` (cert + key PEM).
fn https_client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The demo extender served over TLS on an ephemeral 127.0.0.1 port by [`tls::serve`].
async fn start(config: &TlsConfig) -> (SocketAddr, Handle<SocketAddr>, RustlsConfig) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rustls = tls::rustls_config(config).unwrap();
    let router = common::demo_router(Config::default()).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Handle::new();
    tokio::spawn(tls::serve(listener, router, rustls.clone(), handle.clone()));
    (addr, handle, rustls)
}

/// `POST /scheduler/prioritize` with a names-mode body; the status or the whole error chain.
async fn prioritize(client: &reqwest::Client, addr: SocketAddr) -> Result<u16, String> {
    client
        .post(format!("https://{addr}/scheduler/prioritize"))
        .header("content-type", "application/json")
        .body(NAMES)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            chain
        })
}

#[tokio::test]
async fn plain_tls_without_client_ca_serves_any_client() {
    let pki = Pki::new();
    let (addr, handle, _) = start(&pki.tls(false)).await;
    assert_eq!(prioritize(&pki.client(None), addr).await, Ok(200));
    // A client certificate nobody asked for is not sent and changes nothing.
    assert_eq!(
        prioritize(&pki.client(Some(&pki.client)), addr).await,
        Ok(200)
    );
    handle.shutdown();
}

#[tokio::test]
async fn client_ca_requires_a_certificate_chained_to_it() {
    let pki = Pki::new();
    let (addr, handle, _) = start(&pki.tls(true)).await;

    let none = prioritize(&pki.client(None), addr).await;
    let e = none.expect_err("a client without a certificate is served");
    assert!(e.contains("CertificateRequired"), "{e}");

    let rogue = prioritize(&pki.client(Some(&pki.rogue_client)), addr).await;
    let e = rogue.expect_err("a certificate from another CA is accepted");
    assert!(
        e.contains("UnknownCA") || e.contains("BadCertificate"),
        "{e}"
    );

    assert_eq!(
        prioritize(&pki.client(Some(&pki.client)), addr).await,
        Ok(200)
    );
    handle.shutdown();
}

#[test]
fn alpn_offers_h2_and_http11_with_and_without_client_ca() {
    let pki = Pki::new();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    for client_ca in [false, true] {
        let config = tls::server_config(&pki.tls(client_ca), provider.clone()).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}

/// The error `rustls_config` gives for `config`, as text.
fn error_of(config: &TlsConfig) -> String {
    match tls::rustls_config(config) {
        Ok(_) => panic!("{config:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(e: &str, field: &str, path: &Path, what: &str) {
    assert!(e.starts_with(&format!("extender.tls.{field}: ")), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains(what), "{e}");
}

#[test]
fn file_errors_name_the_field_and_the_file() {
    let pki = Pki::new();
    let cert = std::fs::read_to_string(pki.path("server.crt")).unwrap();
    let key = std::fs::read_to_string(pki.path("server.key")).unwrap();
    let missing = pki.path("missing.pem");
    let empty = pki.write("empty.pem", "");
    let key_only = pki.write("key-only.pem", &key);
    let cert_only = pki.write("cert-only.pem", &cert);
    let garbage = pki.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    );
    let other_key = pki.write("other.key", &KeyPair::generate().unwrap().serialize_pem());

    let base = pki.tls(true);
    let with = |f: &dyn Fn(&mut TlsConfig)| {
        let mut c = base.clone();
        f(&mut c);
        error_of(&c)
    };
    let e = with(&|c| c.cert_file = missing.clone());
    assert_names(&e, "certFile", &missing, "reading");
    let e = with(&|c| c.cert_file = key_only.clone());
    assert_names(&e, "certFile", &key_only, "no PEM CERTIFICATE");
    let e = with(&|c| c.cert_file = garbage.clone());
    assert_names(&e, "certFile", &garbage, "bad PEM");
    let e = with(&|c| c.key_file = missing.clone());
    assert_names(&e, "keyFile", &missing, "reading");
    let e = with(&|c| c.key_file = cert_only.clone());
    assert_names(&e, "keyFile", &cert_only, "no PEM private key");
    let e = with(&|c| c.key_file = other_key.clone());
    assert_names(&e, "keyFile", &other_key, "not usable with the certificate");
    let e = with(&|c| c.client_ca_file = Some(missing.clone()));
    assert_names(&e, "clientCaFile", &missing, "reading");
    let e = with(&|c| c.client_ca_file = Some(empty.clone()));
    assert_names(&e, "clientCaFile", &empty, "no PEM CERTIFICATE");
}

#[test]
fn yaml_field_is_client_ca_file() {
    let c = Config::parse(
        "extender:\n  tls:\n    certFile: /c\n    keyFile: /k\n    clientCaFile: /ca\n",
        "x.yaml",
    )
    .unwrap();
    let tls = c.extender.tls.unwrap();
    assert_eq!(tls.client_ca_file, Some(PathBuf::from("/ca")));
    let e = Config::parse(
        "extender:\n  tls:\n    certFile: /c\n    keyFile: /k\n    caFile: /ca\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("extender.tls"), "{e}");
    assert!(e.contains("unknown field `caFile`"), "{e}");
    assert_eq!(tls.reload_seconds, 60.0);
    let e = Config::parse(
        "extender:\n  tls:\n    certFile: /c\n    keyFile: /k\n    reloadSeconds: -1\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("extender.tls.reloadSeconds"), "{e}");
}

#[tokio::test]
async fn changed_files_are_served_without_a_restart() {
    let pki = Pki::new();
    let config = pki.tls(false);
    let (addr, handle, rustls) = start(&config).await;
    tls::spawn_reload(config, rustls, Duration::from_millis(100));
    let old_client = pki.client(None);
    assert_eq!(prioritize(&old_client, addr).await, Ok(200));

    // A key that does not match the certificate: logged, the served pair kept.
    pki.write("server.key", &KeyPair::generate().unwrap().serialize_pem());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Fresh clients: a pooled keep-alive connection would keep the old handshake.
    assert_eq!(prioritize(&pki.client(None), addr).await, Ok(200));

    // A new pair from another CA: served from the next check on, without a restart.
    let new_ca = ca("rotated server CA");
    let (cert, key) = leaf(
        &new_ca,
        "ecoplace",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.write("server.crt", &cert);
    pki.write("server.key", &key);
    let new_client = https_client(&new_ca.pem(), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while prioritize(&new_client, addr).await != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = prioritize(&pki.client(None), addr).await.unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );
    handle.shutdown();
}

/// `ecoplace serve --demo` as a child process; killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ecoplace serve --demo` on 127.0.0.1:`port` with `tls` (plain-HTTP probes on
/// `probes` when given); stderr as given.
fn ecoplace_serve(
    pki: &Pki,
    tls: &TlsConfig,
    port: u16,
    probes: Option<u16>,
    stderr: Stdio,
) -> Serve {
    let mut yaml = format!("extender:\n  listen: 127.0.0.1:{port}\n");
    if let Some(p) = probes {
        yaml.push_str(&format!("  probesListen: 127.0.0.1:{p}\n"));
    }
    yaml.push_str(&format!(
        "  tls:\n    certFile: {}\n    keyFile: {}\n",
        tls.cert_file.display(),
        tls.key_file.display()
    ));
    if let Some(ca) = &tls.client_ca_file {
        yaml.push_str(&format!("    clientCaFile: {}\n", ca.display()));
    }
    let config = pki.write("ecoplace.yaml", &yaml);
    Serve(
        Command::new(env!("CARGO_BIN_EXE_ecoplace"))
            .args(["serve", "--demo", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn ecoplace_serve_requires_client_certificates_when_configured() {
    let pki = Pki::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let probes = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = ecoplace_serve(&pki, &pki.tls(true), port, Some(probes), Stdio::inherit());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let client = pki.client(Some(&pki.client));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match prioritize(&client, addr).await {
            Ok(status) => {
                assert_eq!(status, 200);
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("ecoplace serve did not answer: {e}"),
        }
    }
    let e = prioritize(&pki.client(None), addr).await.unwrap_err();
    assert!(e.contains("CertificateRequired"), "{e}");
    // Probes and metrics answer without a certificate on the plain-HTTP port; the verbs
    // are not served there.
    let plain = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{probes}");
    let health = plain.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = plain.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("nodes: synced"));
    let metrics = plain.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("ecoplace_extender_requests_total")
    );
    let verb = plain
        .post(format!("{base}/scheduler/prioritize"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(verb.status(), 404);

    // SIGTERM: both listeners stop and the process exits 0 (tests/shutdown.rs has the
    // call in flight, on the plain listener).
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    for p in [port, probes] {
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", p))
                .await
                .is_err(),
            "port {p} still open"
        );
    }
}

#[test]
fn ecoplace_serve_exits_naming_the_bad_field() {
    let pki = Pki::new();
    let mut tls = pki.tls(true);
    tls.client_ca_file = Some(pki.write("no-ca.pem", "not a certificate\n"));
    let mut serve = ecoplace_serve(&pki, &tls, 0, None, Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ecoplace serve did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("extender.tls.clientCaFile"), "{stderr}");
    assert!(stderr.contains("no-ca.pem"), "{stderr}");
    assert!(stderr.contains("no PEM CERTIFICATE"), "{stderr}");
}
