//! Backfilling history with `promtool tsdb create-blocks-from openmetrics`, after checking
//! the input the way promtool needs it (timestamps in seconds, `# EOF`).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;

use super::{PROMTOOL_BIN, ensure_binary};

/// Writes `text` to `input` and runs promtool to create blocks in `data_dir`.
pub(super) fn backfill(
    text: &str,
    input: &Path,
    data_dir: &Path,
    allow_future: bool,
) -> Result<()> {
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
pub(super) fn check_openmetrics(text: &str) -> Result<Option<f64>> {
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
pub(super) enum LineTimestamp {
    /// A parseable timestamp (seconds if the input is right).
    At(f64),
    /// Value but no timestamp (promtool rejects this).
    Missing,
    /// Not understood here; promtool will judge it.
    Unknown,
}

pub(super) fn sample_timestamp(line: &str) -> LineTimestamp {
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
