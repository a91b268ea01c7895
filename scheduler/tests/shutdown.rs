//! SIGTERM to the real `ecoplace` binary: `serve --demo` stops accepting, lets a call in
//! flight finish and exits 0; `ocm-scores` and `serve` with `ocm.enabled`, against the
//! in-process fake hub apiserver, release their OCM Lease (the holder cleared by a PATCH the
//! fake records) before they exit 0, and a waiting peer then takes the Lease over. Text
//! logs written to a pipe carry no ANSI colour codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ocm_hub;

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scheduler::config::LeaseConfig;
use scheduler::lease::Leadership;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ecoplace/leases/ecoplace-ocm-scores";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary as a child process with its stderr collected by a thread; killed on drop.
struct Ecoplace {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Ecoplace {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecoplace"));
        cmd.args(args)
            .env("ECOPLACE_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, stderr }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Ecoplace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `secs` for `cond`, failing with the child's stderr.
async fn wait_for(e: &mut Ecoplace, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if let Some(status) = e.exited() {
            panic!("ecoplace exited ({status}) before {what}:\n{}", e.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            e.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn healthy(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.starts_with("HTTP/1.1 200")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_finishes_the_call_in_flight_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write(
        dir.path(),
        "ecoplace.yaml",
        &format!("extender:\n  listen: 127.0.0.1:{port}\n"),
    );
    let mut serve = Ecoplace::start(&["serve", "--demo", "--config", &config], &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !healthy(port).await {
        assert!(serve.exited().is_none(), "exited:\n{}", serve.stderr());
        assert!(
            Instant::now() < deadline,
            "not serving:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A prioritize call whose body is still arriving when the signal comes.
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/args-names.json"
    ))
    .unwrap();
    let mut call = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /scheduler/prioritize HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    call.write_all(head.as_bytes()).await.unwrap();
    call.write_all(&body[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    serve.sigterm();
    let log = Arc::clone(&serve.stderr);
    wait_for(&mut serve, "the shutdown log", 10, || {
        log.lock().unwrap().contains("shutting down")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(serve.exited().is_none(), "exited with a call in flight");
    // No new connections once shutting down.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still accepting after SIGTERM"
    );
    call.write_all(&body[half..]).await.unwrap();
    let mut answer = String::new();
    call.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"Host\""), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = serve.exited() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit:\n{}", serve.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = signalled.elapsed();
    let log = serve.stderr();
    eprintln!(
        "serve: {status} {took:?} after SIGTERM (the call in flight got its last bytes 0.5 s after it)"
    );
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("ecoplace serve stopped"), "{log}");
    // Logs to a pipe (a pod's log) are plain text.
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains("\x1b["), "ANSI codes in piped logs:\n{log:?}");
}

/// What one shutdown of a Lease holder looked like, from the signal.
#[derive(Debug)]
struct Released {
    /// The fake received the PATCH clearing the holder.
    release: Duration,
    /// The process had exited.
    exit: Duration,
    /// The waiting peer held the Lease.
    takeover: Duration,
}

/// Runs `args` (with `KUBECONFIG` pointing at the fake hub) until it holds the Lease, with a
/// peer waiting, then sends SIGTERM.
async fn lease_holder_stops(verb: &str, args: &[&str], extra_yaml: &str) -> Released {
    let (hub, client, url) = ocm_hub::start_at().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: hub, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: test, user: {{}}}}]\ncontexts: [{{name: hub, context: {{cluster: hub, user: test}}}}]\n\
             current-context: hub\n"
        ),
    );
    // Telemetry is unreachable (a closed port): the publisher still joins the election.
    let config = write(
        dir.path(),
        "ecoplace.yaml",
        &format!(
            "telemetry:\n  prometheus:\n    url: http://127.0.0.1:1\n    timeoutSeconds: 1\n    retries: 0\n\
             carbon:\n  staticGPerKwh: {{DE: 300}}\n\
             ocm:\n  enabled: true\n  lease: {{namespace: ecoplace}}\n{extra_yaml}"
        ),
    );
    let mut argv = vec![verb, "--config", &config];
    argv.extend(args);
    let mut e = Ecoplace::start(
        &argv,
        &[("KUBECONFIG", &kubeconfig), ("POD_NAME", "replica-a")],
    );
    let holder = |hub: &ocm_hub::Hub| {
        hub.get(LEASE)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    wait_for(&mut e, "replica-a to hold the Lease", 60, || {
        holder(&hub).as_deref() == Some("replica-a")
    })
    .await;
    let peer = Leadership::join(
        client,
        &LeaseConfig {
            name: "ecoplace-ocm-scores".into(),
            namespace: Some("ecoplace".into()),
            ..LeaseConfig::default()
        },
        "ecoplace",
        "replica-b",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!peer.is_leader());
    let log = Arc::clone(&e.stderr);
    let signalled = Instant::now();
    e.sigterm();
    let (mut exit, mut takeover) = (None, None);
    let deadline = signalled + Duration::from_secs(30);
    while exit.is_none() || takeover.is_none() {
        assert!(
            Instant::now() < deadline,
            "exit {exit:?}, takeover {takeover:?}:\n{}",
            log.lock().unwrap()
        );
        if exit.is_none()
            && let Some(status) = e.exited()
        {
            assert!(status.success(), "{status}:\n{}", log.lock().unwrap());
            exit = Some(signalled.elapsed());
        }
        if takeover.is_none() && peer.is_leader() {
            takeover = Some(signalled.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let releases: Vec<ocm_hub::Req> = hub
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path == LEASE
                && r.body["spec"].get("holderIdentity") == Some(&Value::Null)
        })
        .collect();
    assert_eq!(releases.len(), 1, "one release: {releases:#?}");
    let r = &releases[0];
    assert!(r.at > signalled);
    // The crate's release: a strategic-merge patch nulling the holder and its times.
    assert_eq!(r.content_type, "application/strategic-merge-patch+json");
    for key in ["acquireTime", "renewTime", "leaseDurationSeconds"] {
        assert_eq!(r.body["spec"].get(key), Some(&Value::Null), "{key}");
    }
    let release = r.at - signalled;
    let exit = exit.unwrap();
    assert!(release < exit, "released {release:?}, exited {exit:?}");
    assert_eq!(holder(&hub).as_deref(), Some("replica-b"));
    let log = log.lock().unwrap().clone();
    assert!(log.contains("OCM Lease released"), "{log}");
    assert!(log.contains(&format!("ecoplace {verb} stopped")), "{log}");
    assert!(!log.contains("\x1b["), "ANSI codes in piped logs");
    Released {
        release,
        exit,
        takeover: takeover.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocm_scores_releases_its_lease_before_it_exits_on_sigterm() {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let r = lease_holder_stops("ocm-scores", &["--listen", &listen], "").await;
    eprintln!("ocm-scores after SIGTERM: {r:?}");
    assert!(r.release < Duration::from_secs(2), "{r:?}");
    assert!(r.exit < Duration::from_secs(5), "{r:?}");
    // The waiting peer re-reads the Lease every second (lease::RECHECK), so it takes
    // the released Lease over within about a second, not when the old expiry passes.
    assert!(r.takeover < Duration::from_secs(3), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_ocm_releases_its_lease_before_it_exits_on_sigterm() {
    let port = free_port();
    let extra = format!("extender:\n  listen: 127.0.0.1:{port}\n");
    let r = lease_holder_stops("serve", &[], &extra).await;
    eprintln!("serve with ocm.enabled after SIGTERM: {r:?}");
    assert!(r.release < Duration::from_secs(2), "{r:?}");
    assert!(r.exit < Duration::from_secs(5), "{r:?}");
    assert!(r.takeover < Duration::from_secs(3), "{r:?}");
}
