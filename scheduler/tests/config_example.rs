//! The documented example configuration parses, means what its comments say, and lists every
//! key of the configuration reference (docs/configuration.md).
//!
//! The rule for the example: every key path of the reference appears in it, either set or
//! commented out as a whole-line `# key: value` comment whose `#` stands at the column the
//! key would have (so that deleting `# ` makes it a key in the right place). Removing `# `
//! from every such line must give a file whose keys and values all deserialize strictly into
//! `Config` (unknown keys and wrong types are errors); the example as it is must pass
//! `Config::load`, semantic checks included. Prose comments therefore never start with
//! `word:`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::PathBuf;

use scheduler::config::{Config, reference};
use serde::Deserialize;
use serde_yaml::Value;

fn example_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ecoplace.example.yaml")
}

#[test]
fn documented_example_parses() {
    let config = match Config::load(&example_path()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.extender.deadline_ms, 250);
    assert_eq!(
        config
            .topology
            .carbon_zones
            .get("eu-west-3")
            .map(String::as_str),
        Some("FR")
    );
    assert_eq!(config.carbon.static_g_per_kwh.get("FR"), Some(&60.0));
    assert_eq!(
        config.power.node_types["m7g.4xlarge"].power_cap_watts,
        Some(220.0)
    );
    assert_eq!(
        config.policy.namespaces["frontend"].max_latency_ms,
        Some(20.0)
    );
    // The publisher is off unless asked for: the example is for `ecoplace serve` anywhere.
    assert!(!config.ocm.enabled);
}

/// Key paths of the reference's tables: the first cell of each row, `<name>` kept.
fn reference_paths(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(path, _)| path.to_string()))
        .collect()
}

/// The column of a whole-line `# key:` comment's `#` and the line with `# ` removed, or
/// `None` for any other line. A key is an identifier (letters, digits, `_`, `-`) followed by
/// `:` and then a space or the end of the line.
fn uncomment(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = line[indent..].strip_prefix("# ")?;
    let body = rest.trim_start_matches(' ');
    let key_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(body.len());
    let after = &body[key_len..];
    let is_key = key_len > 0
        && body.starts_with(|c: char| c.is_ascii_alphabetic())
        && (after == ":" || after.starts_with(": "));
    is_key.then(|| format!("{}{rest}", &line[..indent]))
}

/// The example with every commented-out key line turned into a key.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| uncomment(l).unwrap_or_else(|| l.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reference paths that `value` (at `path`, "" for the root) spells, map keys of
/// `<name>` maps generalised; keys the reference does not know go to `unknown`.
fn collect(
    value: &Value,
    path: &str,
    reference: &BTreeSet<String>,
    found: &mut BTreeSet<String>,
    unknown: &mut Vec<String>,
) {
    let Some(map) = value.as_mapping() else {
        return;
    };
    let known = |p: &str| {
        reference.contains(p) || reference.iter().any(|r| r.starts_with(&format!("{p}.")))
    };
    for (k, v) in map {
        let k = match k.as_str() {
            Some(k) => k,
            None => {
                unknown.push(format!("{path}.{k:?}"));
                continue;
            }
        };
        let named = if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        };
        let child = if known(&named) {
            named
        } else if known(&format!("{path}.<name>")) {
            format!("{path}.<name>")
        } else {
            unknown.push(named);
            continue;
        };
        let has_children = reference
            .iter()
            .any(|r| r.starts_with(&format!("{child}.")));
        found.insert(child.clone());
        if has_children {
            collect(v, &child, reference, found, unknown);
        }
    }
}

#[test]
fn example_lists_every_reference_key() {
    let reference = reference_paths(&reference::markdown());
    assert!(
        reference.len() > 50 && reference.contains("ocm.lease.durationSeconds"),
        "the reference's rows were not found: {reference:?}"
    );
    let text = std::fs::read_to_string(example_path()).unwrap();
    let full = uncommented(&text);
    // Commented-out keys are keys of the right type in the right place.
    let de = serde_yaml::Deserializer::from_str(&full);
    if let Err(e) = serde_path_to_error::deserialize::<_, Config>(de) {
        panic!(
            "docs/ecoplace.example.yaml with its `# key:` lines uncommented: {}: {}",
            e.path(),
            e.inner()
        );
    }
    let value = Value::deserialize(serde_yaml::Deserializer::from_str(&full)).unwrap();
    let mut found = BTreeSet::new();
    let mut unknown = Vec::new();
    collect(&value, "", &reference, &mut found, &mut unknown);
    assert!(
        unknown.is_empty(),
        "keys not in docs/configuration.md: {unknown:?}"
    );
    let missing: Vec<&String> = reference.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "docs/ecoplace.example.yaml lacks these keys of docs/configuration.md (add them, \
         set or as `# key: value` lines): {missing:?}"
    );
}

#[test]
fn only_key_comments_are_uncommented() {
    assert_eq!(
        uncomment("  # tls:  # example").as_deref(),
        Some("  tls:  # example")
    );
    assert_eq!(
        uncomment("  #   certFile: /a.crt").as_deref(),
        Some("    certFile: /a.crt")
    );
    assert_eq!(uncomment("# ecoplace.yaml — configuration"), None);
    assert_eq!(uncomment("  # see docs/ocm.md: the lease"), None);
    assert_eq!(uncomment("  #tls:"), None);
    assert_eq!(uncomment("  key: value  # other: comment"), None);
}

#[test]
fn a_missing_key_is_reported() {
    let reference: BTreeSet<String> = [
        "power.nodeTypes",
        "power.nodeTypes.<name>.idleWatts",
        "power.nodeTypes.<name>.maxWatts",
        "power.onnxModel",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let text = "power:\n  nodeTypes:\n    m6i: {idleWatts: 95}\n  # onnxModel: /m.onnx\n";
    let value: Value = serde_yaml::from_str(&uncommented(text)).unwrap();
    let (mut found, mut unknown) = (BTreeSet::new(), Vec::new());
    collect(&value, "", &reference, &mut found, &mut unknown);
    assert!(unknown.is_empty(), "{unknown:?}");
    let missing: Vec<&String> = reference.difference(&found).collect();
    assert_eq!(missing, ["power.nodeTypes.<name>.maxWatts"]);
}
