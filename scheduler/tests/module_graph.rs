//! The import graph between the top-level modules of `scheduler/src` has no circle, and
//! `docs/architecture.md` lists exactly its edges.
//!
//! Every `crate::<module>` path in a module's files (its `use` lines and inline paths,
//! tests included) is an edge from that module to `<module>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Top-level modules (`src/x.rs` or `src/x/`), each with its `.rs` files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut files = Vec::new();
            collect(&path, &mut files);
            out.insert(name, files);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            out.entry(name).or_insert_with(Vec::new).push(path);
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Module → module it imports → the first `file:line` that does.
fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let edges = graph.entry(name.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for target in crate_paths(code) {
                    if &target != name && modules.contains_key(&target) {
                        let at = format!("{}:{}", file.strip_prefix(src).unwrap().display(), n + 1);
                        edges.entry(target).or_insert(at);
                    }
                }
            }
        }
    }
    graph
}

/// The module names after each `crate::` in a line (`crate::{a, b::c}` gives both).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `kepler_client::…`-like identifiers ending in "crate"
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c == ',' {
                    items.push(std::mem::take(&mut item));
                } else {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                out.push(ident(item.trim()));
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A circle through `graph`, if any, as the modules on it.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut c = path[start..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let graph = graph(&src());
    if let Some(c) = circle(&graph) {
        let steps: Vec<String> = c
            .windows(2)
            .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!("import circle:\n  {}", steps.join("\n  "));
    }
}

#[test]
fn architecture_doc_lists_the_module_graph() {
    let graph = graph(&src());
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    // The fenced block after the `<!-- module-graph -->` marker: `module → a, b, c` lines.
    let block = doc
        .split("<!-- module-graph -->")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("docs/architecture.md has a <!-- module-graph --> block");
    let mut listed = BTreeMap::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (from, to) = line.split_once('→').unwrap_or((line, ""));
        let to: BTreeSet<String> = to
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "—")
            .collect();
        listed.insert(from.trim().to_string(), to);
    }
    let actual: BTreeMap<String, BTreeSet<String>> = graph
        .iter()
        .map(|(m, e)| (m.clone(), e.keys().cloned().collect()))
        .collect();
    let expected: String = actual
        .iter()
        .map(|(m, to)| {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            let to = if to.is_empty() {
                "—".to_string()
            } else {
                to.join(", ")
            };
            format!("{m} → {to}\n")
        })
        .collect();
    assert_eq!(
        listed, actual,
        "docs/architecture.md's module graph is out of date; it is:\n{expected}"
    );
}

#[test]
fn crate_paths_reads_groups_and_inline_paths() {
    assert_eq!(
        crate_paths("use crate::{config::Config, fleet::{FleetView, View}};"),
        ["config", "fleet"]
    );
    assert_eq!(
        crate_paths("let x = crate::ocm::scores::score(&crate::config::X);"),
        ["ocm", "config"]
    );
    assert!(crate_paths("use kepler_client::carbon;").is_empty());
}
