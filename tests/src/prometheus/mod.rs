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

mod backfill;
mod exporter;
mod query;

pub use exporter::{ExporterGuard, serve_text};
pub use query::{InstantSample, RangeSeries};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use tempfile::TempDir;

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
            backfill::backfill(text, &input, &data_dir, self.allow_future_backfill)?;
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
}

impl PrometheusServer {
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

pub(crate) fn ensure_binary(path: &str) -> Result<()> {
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
pub(crate) fn free_port() -> Result<u16> {
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

pub(crate) fn unix_seconds(t: DateTime<Utc>) -> String {
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
    use super::backfill::{LineTimestamp, check_openmetrics, sample_timestamp};
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
