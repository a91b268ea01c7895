//! A real Prometheus for integration tests, plus a tiny text exporter for it to scrape.
//!
//! [`PrometheusServer`] runs Debian's `/usr/bin/prometheus` (2.42) as a child process on a
//! free loopback port, with its own temporary directory holding `prometheus.yml`, the TSDB
//! data directory and the server log (`prometheus.log`, stdout + stderr). History can be
//! backfilled with `promtool tsdb create-blocks-from openmetrics` before the server starts,
//! and [`serve_text`] exposes arbitrary text-format metrics (e.g. Kepler's) on
//! `GET /metrics` for Prometheus to scrape.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use tests::prometheus::{PrometheusServer, ScrapeJob, serve_text};
//!
//! let (addr, _exporter) = serve_text(|| "test_gauge{a=\"b\"} 42\n".to_string()).await?;
//! let prom = PrometheusServer::builder()
//!     .scrape_interval(Duration::from_secs(1))
//!     .job(ScrapeJob::new("kepler", [addr.to_string()]).label("cluster", "de"))
//!     .start()
//!     .await?;
//! prom.wait_for_series("test_gauge", 1, Duration::from_secs(15)).await?;
//! let samples = prom.query("test_gauge").await?;
//! assert_eq!(samples[0].value, 42.0);
//! # Ok(())
//! # }
//! ```
//!
//! The server is killed (SIGKILL, then reaped) when the [`PrometheusServer`] is dropped; the
//! exporter stops when its [`ExporterGuard`] is dropped. Port 9090 is never used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Path of the Prometheus server binary (Debian package `prometheus`).
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// Path of `promtool` (Debian package `prometheus`).
pub const PROMTOOL_BIN: &str = "/usr/bin/promtool";

/// Default time [`PrometheusServerBuilder::start`] and [`PrometheusServer::restart`] wait for
/// `GET /-/ready` to answer 200.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `Content-Type` of the Prometheus text exposition format served by [`serve_text`].
pub const TEXT_FORMAT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Lines of `prometheus.log` quoted in error messages.
const LOG_TAIL_LINES: usize = 40;

/// Attempts to find a port nobody else grabbed between probing and Prometheus binding it.
const PORT_ATTEMPTS: usize = 3;

/// One `scrape_configs` entry with a single static target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeJob {
    /// `job_name` (becomes the `job` label).
    pub name: String,
    /// Targets as `host:port`, e.g. the address returned by [`serve_text`].
    pub targets: Vec<String>,
    /// Extra target labels attached to every scraped series, e.g. `cluster = "de"`.
    pub labels: BTreeMap<String, String>,
    /// HTTP path to scrape; `/metrics` by default.
    pub metrics_path: String,
    /// Keep labels the target exposes (e.g. `instance`) over the target's own.
    pub honor_labels: bool,
}

impl ScrapeJob {
    /// A job named `name` scraping `targets` (`host:port`) at `/metrics`, without extra labels.
    pub fn new<I, S>(name: impl Into<String>, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            targets: targets.into_iter().map(Into::into).collect(),
            labels: BTreeMap::new(),
            metrics_path: "/metrics".to_string(),
            honor_labels: false,
        }
    }

    /// Keeps exposed labels over target labels (`honor_labels: true`), as a Kepler v0.7
    /// set-up does once `instance` carries the node name.
    #[must_use]
    pub fn honor_labels(mut self) -> Self {
        self.honor_labels = true;
        self
    }

    /// Adds (or replaces) the target label `name="value"`.
    #[must_use]
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Sets the HTTP path to scrape.
    #[must_use]
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = path.into();
        self
    }
}

/// Configures and starts a [`PrometheusServer`]; obtained from [`PrometheusServer::builder`].
#[derive(Debug, Clone)]
pub struct PrometheusServerBuilder {
    scrape_interval: Duration,
    lookback_delta: Option<Duration>,
    jobs: Vec<ScrapeJob>,
    backfills: Vec<String>,
    allow_future_backfill: bool,
    ready_timeout: Duration,
    extra_args: Vec<String>,
}

impl Default for PrometheusServerBuilder {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(1),
            lookback_delta: None,
            jobs: Vec::new(),
            backfills: Vec::new(),
            allow_future_backfill: false,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            extra_args: Vec::new(),
        }
    }
}

impl PrometheusServerBuilder {
    /// Global `scrape_interval` (also `evaluation_interval`); 1 s by default.
    /// `scrape_timeout` is set to `min(interval, 10 s)` as Prometheus requires.
    #[must_use]
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// `--query.lookback-delta` (Prometheus' default is 5 min when this is not set).
    #[must_use]
    pub fn lookback_delta(mut self, delta: Duration) -> Self {
        self.lookback_delta = Some(delta);
        self
    }

    /// Adds a scrape job.
    #[must_use]
    pub fn job(mut self, job: ScrapeJob) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds several scrape jobs.
    #[must_use]
    pub fn jobs(mut self, jobs: impl IntoIterator<Item = ScrapeJob>) -> Self {
        self.jobs.extend(jobs);
        self
    }

    /// Backfills OpenMetrics `text` into the data directory (via
    /// `promtool tsdb create-blocks-from openmetrics`) before the server starts.
    ///
    /// The text must end with `# EOF` and carry timestamps in **seconds**; samples of a series
    /// must be in increasing time order (promtool silently drops out-of-order ones). Counter
    /// samples of a `# TYPE x counter` family should be named `x_total`. May be called more than
    /// once; each call becomes its own set of blocks (overlaps are merged by Prometheus).
    ///
    /// Timestamps after "now" are rejected unless
    /// [`allow_future_backfill`](Self::allow_future_backfill) is set: Prometheus refuses every
    /// scraped sample older than the newest block ("out of bounds"), so live scraping would
    /// silently stop working.
    #[must_use]
    pub fn backfill_openmetrics(mut self, text: impl Into<String>) -> Self {
        self.backfills.push(text.into());
        self
    }

    /// Accepts backfilled samples with future timestamps (e.g. forecasts). Live scrapes are
    /// then dropped as "out of bounds" until the wall clock passes the last backfilled sample.
    #[must_use]
    pub fn allow_future_backfill(mut self, allow: bool) -> Self {
        self.allow_future_backfill = allow;
        self
    }

    /// How long to wait for `GET /-/ready` (default [`DEFAULT_READY_TIMEOUT`]).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Appends a raw command-line flag for `prometheus`, e.g. `--log.level=debug`.
    #[must_use]
    pub fn extra_arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Writes the config, runs the backfills, starts Prometheus on a free loopback port and
    /// waits until it is ready.
    pub async fn start(self) -> Result<PrometheusServer> {
        ensure_binary(PROMETHEUS_BIN)?;
        let dir = tempfile::Builder::new()
            .prefix("ecoplace-prometheus-")
            .tempdir()
            .context("creating a temp dir for Prometheus")?;
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let config_path = dir.path().join("prometheus.yml");
        fs::write(
            &config_path,
            render_config(self.scrape_interval, &self.jobs)?,
        )
        .with_context(|| format!("writing {}", config_path.display()))?;

        for (i, text) in self.backfills.iter().enumerate() {
            let input = dir.path().join(format!("backfill-{i}.om"));
            backfill(text, &input, &data_dir, self.allow_future_backfill)?;
        }

        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;

        let mut server = PrometheusServer {
            child: None,
            port: 0,
            config_path,
            data_dir,
            log_path: dir.path().join("prometheus.log"),
            lookback_delta: self.lookback_delta,
            extra_args: self.extra_args,
            ready_timeout: self.ready_timeout,
            http,
            dir,
        };

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(err) => {
                    let port_taken = server
                        .log_tail(LOG_TAIL_LINES)
                        .contains("address already in use");
                    server.kill();
                    if !port_taken {
                        return Err(err);
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("could not start Prometheus")))
    }
}

/// A running Prometheus child process with its own temp dir; killed on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Option<Child>,
    port: u16,
    config_path: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    lookback_delta: Option<Duration>,
    extra_args: Vec<String>,
    ready_timeout: Duration,
    http: reqwest::Client,
    // Dropped last (fields drop in declaration order, after `Drop::drop` killed the child).
    dir: TempDir,
}

/// One series of an instant-query result (`resultType` `vector` or `scalar`).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// All labels including `__name__` when present.
    pub labels: BTreeMap<String, String>,
    /// Evaluation timestamp, Unix seconds.
    pub timestamp: f64,
    /// Sample value (`NaN`/`±Inf` are parsed as such).
    pub value: f64,
}

/// One series of a range-query result (`resultType` `matrix`).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// All labels including `__name__` when present.
    pub labels: BTreeMap<String, String>,
    /// `(Unix seconds, value)` pairs in time order.
    pub values: Vec<(f64, f64)>,
}

impl PrometheusServer {
    /// Starts configuring a server (1 s scrape interval, no jobs, no backfill).
    pub fn builder() -> PrometheusServerBuilder {
        PrometheusServerBuilder::default()
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The loopback port Prometheus listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temp dir (config, data dir, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The TSDB directory (`--storage.tsdb.path`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file receiving Prometheus' stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the Prometheus log (empty if it cannot be read).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path, lines)
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (SIGKILL, simulating a crash) and reaps it. Data already in the
    /// WAL survives a [`restart`](Self::restart). No-op when already stopped.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // `kill` fails only if the process already exited; `wait` reaps it either way.
            let _ = child.kill();
            child.wait().context("waiting for the killed Prometheus")?;
        }
        Ok(())
    }

    /// Stops the server if running and starts it again on the same port and data dir,
    /// waiting until it is ready.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let result = self.spawn_and_wait().await;
        if result.is_err() {
            self.kill();
        }
        result
    }

    /// Asks Prometheus to re-read `prometheus.yml` (`POST /-/reload`).
    pub async fn reload(&self) -> Result<()> {
        let url = format!("{}/-/reload", self.url());
        let resp = self
            .http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!("POST {url}: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// Replaces the scrape jobs in `prometheus.yml` and reloads the running server.
    pub async fn set_jobs(&self, scrape_interval: Duration, jobs: &[ScrapeJob]) -> Result<()> {
        fs::write(&self.config_path, render_config(scrape_interval, jobs)?)
            .with_context(|| format!("writing {}", self.config_path.display()))?;
        self.reload().await
    }

    /// Instant query evaluated now (`GET /api/v1/query`).
    pub async fn query(&self, promql: &str) -> Result<Vec<InstantSample>> {
        self.instant(promql, None).await
    }

    /// Instant query evaluated at `at`.
    pub async fn query_at(&self, promql: &str, at: DateTime<Utc>) -> Result<Vec<InstantSample>> {
        self.instant(promql, Some(at)).await
    }

    /// Range query (`GET /api/v1/query_range`) from `start` to `end` every `step`.
    pub async fn query_range(
        &self,
        promql: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<RangeSeries>> {
        let params = [
            ("query", promql.to_string()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        let data = self.api("query_range", &params).await?;
        let result_type = data.get("resultType").and_then(Value::as_str);
        if result_type != Some("matrix") {
            bail!("query_range {promql:?}: expected a matrix, got {data}");
        }
        let series = data
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("query_range {promql:?}: no result array in {data}"))?;
        series
            .iter()
            .map(|s| {
                let values = s
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| anyhow!("series without values: {s}"))?
                    .iter()
                    .map(parse_point)
                    .collect::<Result<Vec<_>>>()?;
                Ok(RangeSeries {
                    labels: parse_labels(s.get("metric"))?,
                    values,
                })
            })
            .collect()
    }

    /// Polls the instant query `promql` until it returns at least `min_series` series, e.g.
    /// to wait for the first scrapes. The error names the last result/error and the targets'
    /// health (`/api/v1/targets`).
    pub async fn wait_for_series(
        &self,
        promql: &str,
        min_series: usize,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.query(promql).await {
                Ok(samples) if samples.len() >= min_series => return Ok(()),
                Ok(samples) => format!("{} series", samples.len()),
                Err(err) => format!("error: {err:#}"),
            };
            if Instant::now() >= deadline {
                let targets = self.targets_summary().await;
                bail!(
                    "{promql:?} did not reach {min_series} series within {timeout:?} (last: {last}); \
                     targets: {targets}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One line per active target: `job instance health lastError`.
    pub async fn targets_summary(&self) -> String {
        let data = match self.api("targets", &[]).await {
            Ok(data) => data,
            Err(err) => return format!("(unavailable: {err:#})"),
        };
        let targets = data
            .get("activeTargets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if targets.is_empty() {
            return "(no active targets)".to_string();
        }
        targets
            .iter()
            .map(|t| {
                let field = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let labels = t.get("labels");
                let label = |k: &str| {
                    labels
                        .and_then(|l| l.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                format!(
                    "[{} {} {} {}]",
                    label("job"),
                    label("instance"),
                    field("health"),
                    field("lastError")
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn instant(&self, promql: &str, at: Option<DateTime<Utc>>) -> Result<Vec<InstantSample>> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(at) = at {
            params.push(("time", unix_seconds(at)));
        }
        let data = self.api("query", &params).await?;
        let result = data
            .get("result")
            .ok_or_else(|| anyhow!("query {promql:?}: no result in {data}"))?;
        match data.get("resultType").and_then(Value::as_str) {
            Some("vector") => result
                .as_array()
                .ok_or_else(|| anyhow!("query {promql:?}: vector result is not an array"))?
                .iter()
                .map(|s| {
                    let (timestamp, value) = parse_point(
                        s.get("value")
                            .ok_or_else(|| anyhow!("sample without value: {s}"))?,
                    )?;
                    Ok(InstantSample {
                        labels: parse_labels(s.get("metric"))?,
                        timestamp,
                        value,
                    })
                })
                .collect(),
            Some("scalar") => {
                let (timestamp, value) = parse_point(result)?;
                Ok(vec![InstantSample {
                    labels: BTreeMap::new(),
                    timestamp,
                    value,
                }])
            }
            other => bail!("query {promql:?}: unsupported resultType {other:?}"),
        }
    }

    /// `GET /api/v1/{endpoint}` and returns `data` of a `success` answer.
    async fn api(&self, endpoint: &str, params: &[(&str, String)]) -> Result<Value> {
        let base = format!("{}/api/v1/{endpoint}", self.url());
        let url = reqwest::Url::parse_with_params(&base, params)
            .with_context(|| format!("building the URL for {base}"))?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {base}"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .with_context(|| format!("reading the answer of {base}"))?;
        let json: Value = serde_json::from_str(&body)
            .with_context(|| format!("GET {base}: HTTP {status}, body is not JSON: {body}"))?;
        if json.get("status").and_then(Value::as_str) != Some("success") {
            bail!("GET {base} {params:?}: HTTP {status}: {body}");
        }
        json.get("data")
            .cloned()
            .ok_or_else(|| anyhow!("GET {base}: no data in {body}"))
    }

    /// Spawns the child on `self.port` and waits for readiness.
    async fn spawn_and_wait(&mut self) -> Result<()> {
        ensure_binary(PROMETHEUS_BIN)?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let mut cmd = Command::new(PROMETHEUS_BIN);
        cmd.arg(format!("--config.file={}", self.config_path.display()))
            .arg(format!("--storage.tsdb.path={}", self.data_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-lifecycle")
            .arg("--storage.tsdb.retention.time=3650d");
        if let Some(delta) = self.lookback_delta {
            cmd.arg(format!("--query.lookback-delta={}", prom_duration(delta)));
        }
        cmd.args(&self.extra_args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {PROMETHEUS_BIN}"))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("polling Prometheus")?
            {
                bail!(
                    "Prometheus exited with {status} before becoming ready on {url}; last log lines of {}:\n{}",
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            let last = match self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(err) => format!("{err}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "Prometheus was not ready on {url} within {:?} (last: {last}); last log lines of {}:\n{}",
                    self.ready_timeout,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Best-effort kill used on error paths and in `Drop`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps a [`serve_text`] exporter running; dropping it stops accepting connections and
/// closes idle ones.
#[derive(Debug)]
pub struct ExporterGuard {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ExporterGuard {
    /// Stops the exporter and waits until it has shut down (open requests finish first).
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("exporter task failed")?;
        }
        Ok(())
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        // Dropping the sender resolves the shutdown future: axum stops accepting, drops the
        // listener and gracefully closes connections; the task then ends by itself.
        self.shutdown.take();
    }
}

/// Serves `GET /metrics` on `127.0.0.1:<free port>` with
/// [`TEXT_FORMAT_CONTENT_TYPE`] and the body produced by `make_body` on every request.
/// Returns the bound address (pass `addr.to_string()` as a scrape target) and a guard that
/// stops the server when dropped. Must be called inside a Tokio runtime.
pub async fn serve_text<F>(make_body: F) -> Result<(SocketAddr, ExporterGuard)>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let make_body = Arc::new(make_body);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let make_body = Arc::clone(&make_body);
            async move {
                (
                    [(header::CONTENT_TYPE, TEXT_FORMAT_CONTENT_TYPE)],
                    make_body(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("binding the exporter on 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("reading the exporter address")?;
    let listener = listener.tap_io(|tcp| {
        // Avoid delayed-ACK stalls on loopback; failure only costs latency.
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok((
        addr,
        ExporterGuard {
            shutdown: Some(tx),
            task: Some(task),
        },
    ))
}

fn ensure_binary(path: &str) -> Result<()> {
    if Path::new(path).is_file() {
        Ok(())
    } else {
        bail!(
            "{path} not found: install Debian's `prometheus` package by running `scripts/test` \
             (it installs Prometheus and promtool)"
        )
    }
}

/// Picks a free loopback port (never 9090, where Debian's service may listen).
fn free_port() -> Result<u16> {
    for _ in 0..10 {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener
            .local_addr()
            .context("reading the probe port")?
            .port();
        if port != 9090 {
            return Ok(port);
        }
    }
    bail!("could not find a free loopback port")
}

/// Formats a duration for Prometheus flags/config (`1500ms`, `2s`).
fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn unix_seconds(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

/// Renders `prometheus.yml`; strings are JSON-quoted, which YAML accepts verbatim.
pub fn render_config(scrape_interval: Duration, jobs: &[ScrapeJob]) -> Result<String> {
    let q = |s: &str| serde_json::to_string(s).context("quoting a config string");
    let interval = prom_duration(scrape_interval);
    let timeout = prom_duration(scrape_interval.min(Duration::from_secs(10)));
    let mut out = String::new();
    writeln!(out, "global:")?;
    writeln!(out, "  scrape_interval: {interval}")?;
    writeln!(out, "  scrape_timeout: {timeout}")?;
    writeln!(out, "  evaluation_interval: {interval}")?;
    if jobs.is_empty() {
        writeln!(out, "scrape_configs: []")?;
    } else {
        writeln!(out, "scrape_configs:")?;
    }
    for job in jobs {
        writeln!(out, "  - job_name: {}", q(&job.name)?)?;
        writeln!(out, "    metrics_path: {}", q(&job.metrics_path)?)?;
        if job.honor_labels {
            writeln!(out, "    honor_labels: true")?;
        }
        writeln!(out, "    static_configs:")?;
        let targets = job
            .targets
            .iter()
            .map(|t| q(t))
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        writeln!(out, "      - targets: [{targets}]")?;
        if !job.labels.is_empty() {
            writeln!(out, "        labels:")?;
            for (k, v) in &job.labels {
                writeln!(out, "          {}: {}", q(k)?, q(v)?)?;
            }
        }
    }
    Ok(out)
}

/// Writes `text` to `input` and runs promtool to create blocks in `data_dir`.
fn backfill(text: &str, input: &Path, data_dir: &Path, allow_future: bool) -> Result<()> {
    ensure_binary(PROMTOOL_BIN)?;
    let newest = check_openmetrics(text)?;
    if !allow_future && let Some(newest) = newest {
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        if newest > now {
            bail!(
                "OpenMetrics backfill has a sample at {newest}, {:.0} s in the future: Prometheus \
                 would then drop every live scrape as \"out of bounds\" until that time; end the \
                 history at or before now, or use `allow_future_backfill(true)`",
                newest - now
            );
        }
    }
    // promtool accepts nothing after `# EOF` but one newline.
    let text = format!("{}\n", text.trim_end());
    fs::write(input, text).with_context(|| format!("writing {}", input.display()))?;
    let output = Command::new(PROMTOOL_BIN)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(input)
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {PROMTOOL_BIN}"))?;
    if !output.status.success() {
        bail!(
            "`promtool tsdb create-blocks-from openmetrics {} {}` failed ({}):\n{}{}",
            input.display(),
            data_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Catches the mistakes promtool accepts silently or reports obscurely: a missing `# EOF`,
/// samples without timestamps and millisecond timestamps (which promtool would happily store ~56 000 years ahead).
/// Returns the newest sample timestamp (seconds), if any sample has one.
fn check_openmetrics(text: &str) -> Result<Option<f64>> {
    if text.trim_end().lines().last().map(str::trim) != Some("# EOF") {
        bail!("OpenMetrics backfill input must end with a `# EOF` line");
    }
    // Anything above this is not a plausible Unix time in seconds (year ~5138).
    const MAX_SECONDS: f64 = 1e11;
    let mut newest: Option<f64> = None;
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ts = match sample_timestamp(line) {
            LineTimestamp::At(ts) => ts,
            LineTimestamp::Missing => bail!(
                "OpenMetrics backfill line {}: every sample needs a timestamp (Unix seconds): {line}",
                no + 1
            ),
            LineTimestamp::Unknown => continue,
        };
        if ts > MAX_SECONDS {
            bail!(
                "OpenMetrics backfill line {}: timestamp {ts} looks like milliseconds; \
                 OpenMetrics timestamps are seconds: {line}",
                no + 1
            );
        }
        newest = Some(newest.map_or(ts, |n| n.max(ts)));
    }
    Ok(newest)
}

/// How a sample line's timestamp looks (quote-aware label skipping).
#[derive(Debug, PartialEq)]
enum LineTimestamp {
    /// A parseable timestamp (seconds if the input is right).
    At(f64),
    /// Value but no timestamp (promtool rejects this).
    Missing,
    /// Not understood here; promtool will judge it.
    Unknown,
}

fn sample_timestamp(line: &str) -> LineTimestamp {
    match scan_sample(line) {
        None => LineTimestamp::Unknown,
        Some(None) => LineTimestamp::Missing,
        Some(Some(ts)) => ts.parse().map_or(LineTimestamp::Unknown, LineTimestamp::At),
    }
}

/// `Some(timestamp token)` of a sample line with a value; `None` if it cannot be scanned.
fn scan_sample(line: &str) -> Option<Option<&str>> {
    let rest = match line.find(['{', ' ']) {
        Some(i) if line[i..].starts_with('{') => {
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = None;
            for (j, c) in line[i..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if in_quotes => escaped = true,
                    '"' => in_quotes = !in_quotes,
                    '}' if !in_quotes => {
                        end = Some(i + j + 1);
                        break;
                    }
                    _ => {}
                }
            }
            &line[end?..]
        }
        Some(i) => &line[i..],
        None => return None,
    };
    let mut tokens = rest.split_whitespace();
    let _value = tokens.next()?;
    // `#` starts an exemplar, which follows the (absent) sample timestamp.
    Some(tokens.next().filter(|ts| *ts != "#"))
}

fn parse_labels(metric: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let Some(metric) = metric else {
        return Ok(BTreeMap::new());
    };
    metric
        .as_object()
        .ok_or_else(|| anyhow!("metric is not an object: {metric}"))?
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(|| anyhow!("label {k} is not a string: {v}"))
        })
        .collect()
}

/// Parses `[<unix seconds>, "<value>"]`.
fn parse_point(point: &Value) -> Result<(f64, f64)> {
    let pair = point
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| anyhow!("expected [time, \"value\"], got {point}"))?;
    let ts = pair[0]
        .as_f64()
        .ok_or_else(|| anyhow!("bad timestamp in {point}"))?;
    let value = pair[1]
        .as_str()
        .ok_or_else(|| anyhow!("value is not a string in {point}"))?
        .parse::<f64>()
        .with_context(|| format!("bad value in {point}"))?;
    Ok((ts, value))
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(prom_duration(Duration::from_secs(1)), "1s");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(prom_duration(Duration::from_secs(300)), "300s");
    }

    #[test]
    fn timestamps_in_lines() {
        use LineTimestamp::{At, Missing, Unknown};
        assert_eq!(sample_timestamp("x 1 1700000000"), At(1.7e9));
        assert_eq!(sample_timestamp("x 1"), Missing);
        assert_eq!(sample_timestamp("x"), Unknown);
        assert_eq!(sample_timestamp(r#"x{a="} 9 9",b="\""} 1 5"#), At(5.0));
        assert_eq!(sample_timestamp(r#"x{a="b" 1 5"#), Unknown);
        assert_eq!(sample_timestamp(r#"x_total{a="b"} 1 # {t="1"} 1"#), Missing);
        assert_eq!(
            sample_timestamp(r#"x_total{a="b"} 1 7 # {t="1"} 1"#),
            At(7.0)
        );
        assert!(check_openmetrics("x 1 1700000000000\n# EOF\n").is_err());
        assert!(check_openmetrics("x 1\n# EOF\n").is_err());
        assert!(check_openmetrics("x 1 1700000000\n").is_err());
        assert_eq!(
            check_openmetrics("x 1 1700000000\ny 1 1700000001\n# EOF\n  \n").ok(),
            Some(Some(1_700_000_001.0))
        );
    }

    #[test]
    fn config_quotes_everything() -> Result<()> {
        let job = ScrapeJob::new("kepler", ["127.0.0.1:1"]).label("cluster", "de");
        let cfg = render_config(Duration::from_millis(500), &[job])?;
        assert!(cfg.contains("scrape_timeout: 500ms"));
        assert!(cfg.contains(r#"- targets: ["127.0.0.1:1"]"#));
        assert!(cfg.contains(r#""cluster": "de""#));
        Ok(())
    }
}
