//! Queries against the test Prometheus (`/api/v1/query`, `query_range`, targets) and the
//! parsing of their JSON answers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{PrometheusServer, unix_seconds};

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

    /// Waits (up to 30 s) until `metric` has at least four scraped samples over the last
    /// minute in at least `min_series` series: rates and increases over it have data.
    pub async fn wait_for_scrapes(&self, metric: &str, min_series: usize) -> Result<()> {
        self.wait_for_series(
            &format!("count_over_time({metric}[1m]) >= 4"),
            min_series,
            Duration::from_secs(30),
        )
        .await
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
