//! Every combination of manifests/ deploys what docs/install.md says: each root (`base` and
//! every `overlays/*`) is rendered with `kubectl kustomize` with and without each component
//! (every `components/*` and `monitoring`), from a temporary kustomization that lists the
//! root under `resources:` and the components under `components:`, and each render is checked:
//!
//! - images: every container and initContainer of every workload runs the image set in
//!   manifests/base/kustomization.yaml's `images:` entry `ecoplace` (`newName:newTag`),
//!   except those of Deployment `ecoplace-scheduler`, which run upstream
//!   `registry.k8s.io/kube-scheduler` at the tag pinned in overlays/extender's `images:`;
//! - identities: the workloads and the ServiceAccount each runs as are those of the
//!   workload table in docs/install.md ("RBAC: what each ServiceAccount may do") whose part
//!   is in the combination, and the rendered ServiceAccounts are exactly theirs;
//! - rights: the (apiGroup, resource, resourceNames, verb) rules and built-in roles that the
//!   rendered (Cluster)RoleBindings give each ServiceAccount, with their scope, are exactly
//!   the rows of its table in docs/install.md whose part is in the combination;
//! - logs: every ecoplace container runs with `--log-format json` and `ECOPLACE_LOG=info`.
//!
//! Also, each alert's `for:` and severity in manifests/monitoring/prometheusrule.yaml equal
//! the table of docs/failure-modes.md.
//!
//! kubectl (1.27 or later, kustomize v5) must be on the PATH; without it the test fails and
//! says so (scripts/install-deps explains how to get it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

/// The namespace every ecoplace ServiceAccount lives in.
const NAMESPACE: &str = "ecoplace-system";
/// The Deployment that runs upstream kube-scheduler rather than ecoplace.
const SCHEDULER_DEPLOYMENT: &str = "ecoplace-scheduler";
/// The upstream image of the second scheduler, pinned by overlays/extender's `images:`.
const SCHEDULER_IMAGE: &str = "registry.k8s.io/kube-scheduler";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn manifests() -> PathBuf {
    repo().join("manifests")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The kustomization.yaml of a directory under manifests/ (`rel` like `overlays/extender`).
fn kustomization(rel: &str) -> Value {
    let text = read(&format!("manifests/{rel}/kustomization.yaml"));
    yaml_docs(&text, rel).remove(0)
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Subdirectories of manifests/`rel` that hold a kustomization.yaml, as `rel/name`.
fn kustomize_dirs(rel: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(manifests().join(rel))
        .unwrap_or_else(|e| panic!("manifests/{rel}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .map(|p| format!("{rel}/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    dirs.sort();
    dirs
}

/// `rel` and every kustomization directory it includes through `resources:`, as paths
/// relative to manifests/ (`overlays/extender` includes `base`).
fn parts_of(rel: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::from([rel.to_string()]);
    for entry in strs(&kustomization(rel)["resources"]) {
        let dir = manifests().join(rel).join(entry);
        if dir.join("kustomization.yaml").is_file() {
            let dir = dir.canonicalize().unwrap();
            let sub = dir.strip_prefix(manifests()).unwrap().to_str().unwrap();
            out.extend(parts_of(sub));
        }
    }
    out
}

/// `to` relative to the directory `from` (both absolute): kustomize refuses absolute paths.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

/// The kubectl to run: `$KUBECTL`, else `kubectl`; fails with what to do when it is absent.
fn kubectl() -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    match Command::new(&bin).args(["version", "--client"]).output() {
        Ok(out) if out.status.success() => bin,
        Ok(out) => panic!(
            "`{bin} version --client` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "this test renders manifests/ with `kubectl kustomize`, but `{bin}` cannot be run \
             ({e}). Install kubectl 1.27 or later (kustomize v5; see scripts/install-deps), \
             or point $KUBECTL at one."
        ),
    }
}

/// One combination: a root and the components added to it.
#[derive(Debug, Clone)]
struct Combination {
    root: String,
    components: Vec<String>,
}

impl Combination {
    fn label(&self) -> String {
        std::iter::once(self.root.as_str())
            .chain(self.components.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The parts of manifests/ in this combination, as the docs' `from` column names them.
    fn parts(&self) -> BTreeSet<String> {
        let mut parts = parts_of(&self.root);
        parts.extend(self.components.iter().cloned());
        parts
    }

    /// The rendered objects.
    fn render(&self, kubectl: &str) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().canonicalize().unwrap();
        let rel = |p: &str| relative(&here, &manifests().join(p)).display().to_string();
        let k = serde_yaml::to_string(&serde_json::json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [rel(&self.root)],
            "components": self.components.iter().map(|c| rel(c)).collect::<Vec<_>>(),
        }))
        .unwrap();
        std::fs::write(here.join("kustomization.yaml"), k).unwrap();
        let out = Command::new(kubectl)
            .arg("kustomize")
            .arg(&here)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: kubectl kustomize failed: {}",
            self.label(),
            String::from_utf8_lossy(&out.stderr)
        );
        yaml_docs(&String::from_utf8(out.stdout).unwrap(), &self.label())
    }
}

/// Every root (`base`, `overlays/*`) with every subset of the components.
fn combinations() -> Vec<Combination> {
    let roots: Vec<String> = std::iter::once("base".to_string())
        .chain(kustomize_dirs("overlays"))
        .collect();
    let components: Vec<String> = kustomize_dirs("components")
        .into_iter()
        .chain(std::iter::once("monitoring".to_string()))
        .collect();
    for c in &components {
        assert_eq!(
            kustomization(c)["kind"].as_str(),
            Some("Component"),
            "manifests/{c} is listed as a component"
        );
    }
    let mut out = Vec::new();
    for root in &roots {
        for mask in 0..(1u32 << components.len()) {
            out.push(Combination {
                root: root.clone(),
                components: components
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, c)| c.clone())
                    .collect(),
            });
        }
    }
    out
}

/// The image an `images:` entry of a kustomization writes for `name`.
fn configured_image(rel: &str, name: &str, default_name: &str) -> String {
    let k = kustomization(rel);
    let entry = k["images"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|i| i["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("manifests/{rel}: no images: entry for {name}"));
    let image = entry["newName"].as_str().unwrap_or(default_name);
    match (entry["newTag"].as_str(), entry["digest"].as_str()) {
        (_, Some(digest)) => format!("{image}@{digest}"),
        (Some(tag), None) => format!("{image}:{tag}"),
        (None, None) => panic!("manifests/{rel}: images: {name} sets neither newTag nor digest"),
    }
}

/// A workload: an object with a pod spec.
#[derive(Debug)]
struct Workload<'a> {
    kind: String,
    name: String,
    pod_spec: &'a Value,
}

/// Every pod spec (a mapping with `containers`) in `v`, wherever it is nested.
fn pod_specs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            if m.get("containers").is_some_and(Value::is_sequence) {
                out.push(v);
            }
            for (_, child) in m {
                pod_specs(child, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| pod_specs(c, out)),
        _ => {}
    }
}

fn workloads(objects: &[Value]) -> Vec<Workload<'_>> {
    let mut out = Vec::new();
    for o in objects {
        let mut specs = Vec::new();
        pod_specs(o, &mut specs);
        for pod_spec in specs {
            out.push(Workload {
                kind: o["kind"].as_str().unwrap().to_string(),
                name: o["metadata"]["name"].as_str().unwrap().to_string(),
                pod_spec,
            });
        }
    }
    out
}

fn containers(pod_spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(|k| pod_spec[k].as_sequence())
        .flatten()
}

/// A right a ServiceAccount holds: a rule (one verb) or a built-in role it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// scope (`cluster` or a namespace), apiGroup, resource, resourceNames, verb.
    Rule(String, String, String, String, String),
    /// scope and `Kind name` of a role the manifests do not define.
    BuiltIn(String, String),
}

/// What the rendered bindings give each ServiceAccount of `NAMESPACE`.
fn rendered_grants(objects: &[Value]) -> Result<BTreeMap<String, BTreeSet<Grant>>, String> {
    let find = |kind: &str, name: &str, ns: Option<&str>| {
        objects.iter().find(|o| {
            o["kind"].as_str() == Some(kind)
                && o["metadata"]["name"].as_str() == Some(name)
                && (ns.is_none() || o["metadata"]["namespace"].as_str() == ns)
        })
    };
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for b in objects {
        let kind = b["kind"].as_str().unwrap_or_default();
        let scope = match kind {
            "ClusterRoleBinding" => "cluster".to_string(),
            "RoleBinding" => b["metadata"]["namespace"]
                .as_str()
                .ok_or("a RoleBinding without namespace")?
                .to_string(),
            _ => continue,
        };
        let binding = b["metadata"]["name"].as_str().unwrap_or_default();
        let role_kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let ns = (role_kind == "Role").then_some(scope.as_str());
        let role = find(role_kind, role_name, ns);
        for s in b["subjects"].as_sequence().into_iter().flatten() {
            let sa = s["name"].as_str().unwrap_or_default();
            if s["kind"].as_str() != Some("ServiceAccount")
                || s["namespace"].as_str() != Some(NAMESPACE)
            {
                return Err(format!(
                    "{kind} {binding}: subject {s:?} is not a ServiceAccount of {NAMESPACE}"
                ));
            }
            let grants = out.entry(sa.to_string()).or_default();
            let Some(role) = role else {
                grants.insert(Grant::BuiltIn(
                    scope.clone(),
                    format!("{role_kind} {role_name}"),
                ));
                continue;
            };
            for rule in role["rules"].as_sequence().into_iter().flatten() {
                if rule.get("nonResourceURLs").is_some() {
                    return Err(format!(
                        "{role_kind} {role_name}: nonResourceURLs are not documented"
                    ));
                }
                let names = strs(&rule["resourceNames"]).join(",");
                for group in strs(&rule["apiGroups"]) {
                    for resource in strs(&rule["resources"]) {
                        for verb in strs(&rule["verbs"]) {
                            grants.insert(Grant::Rule(
                                scope.clone(),
                                group.to_string(),
                                resource.to_string(),
                                names.clone(),
                                verb.to_string(),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A Markdown table: header cells and rows, cells trimmed, backticks removed.
type Table = (Vec<String>, Vec<Vec<String>>);

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|c| c.replace('`', "").trim().to_string())
        .collect()
}

/// The tables of `text`, in order.
fn tables(text: &str) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with('|') {
            continue;
        }
        let header = cells(line);
        let mut rows = Vec::new();
        while let Some(l) = lines.next_if(|l| l.starts_with('|')) {
            if !l.starts_with("|---") {
                rows.push(cells(l));
            }
        }
        out.push((header, rows));
    }
    out
}

/// The lines of the Markdown section whose heading line is `heading`, up to the next
/// heading of the same or a higher level outside code fences.
fn section(text: &str, heading: &str) -> String {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = text.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "no heading `{heading}`");
    let mut fenced = false;
    let mut out = String::new();
    for line in lines {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !fenced && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What docs/install.md documents.
#[derive(Debug)]
struct Documented {
    /// (kind, name) -> (from, ServiceAccount).
    workloads: BTreeMap<(String, String), (String, String)>,
    /// ServiceAccount -> (from, grant).
    grants: BTreeMap<String, Vec<(String, Grant)>>,
}

const RULE_HEADER: [&str; 6] = [
    "from",
    "scope",
    "apiGroup",
    "resource",
    "resourceNames",
    "verbs",
];
const BUILT_IN_HEADER: [&str; 3] = ["from", "scope", "built-in role"];
const WORKLOAD_HEADER: [&str; 4] = ["workload", "runs", "from", "ServiceAccount"];

fn documented(install_md: &str) -> Documented {
    let rbac = section(install_md, "## RBAC: what each ServiceAccount may do");
    let mut workloads = BTreeMap::new();
    let (header, rows) = tables(&rbac)
        .into_iter()
        .next()
        .expect("the workload table");
    assert_eq!(header, WORKLOAD_HEADER, "the workload table's header");
    for r in rows {
        let [workload, _runs, from, sa] = r.as_slice() else {
            panic!("workload row {r:?}")
        };
        let (kind, name) = workload
            .split_once(' ')
            .unwrap_or_else(|| panic!("workload `{workload}`: `Kind name`"));
        workloads.insert(
            (kind.to_string(), name.to_string()),
            (from.clone(), sa.clone()),
        );
    }
    let mut grants: BTreeMap<String, Vec<(String, Grant)>> = BTreeMap::new();
    for chunk in rbac.split("\n### ServiceAccount ").skip(1) {
        let sa = chunk
            .lines()
            .next()
            .unwrap()
            .trim()
            .trim_matches('`')
            .to_string();
        let list = grants.entry(sa.clone()).or_default();
        for (header, rows) in tables(chunk) {
            for r in rows {
                if header == RULE_HEADER {
                    let [from, scope, group, resource, names, verbs] = r.as_slice() else {
                        panic!("{sa}: row {r:?}")
                    };
                    let group = if group == "core" { "" } else { group.as_str() };
                    for verb in verbs.split(',').map(str::trim) {
                        list.push((
                            from.clone(),
                            Grant::Rule(
                                scope.clone(),
                                group.to_string(),
                                resource.clone(),
                                names.clone(),
                                verb.to_string(),
                            ),
                        ));
                    }
                } else if header == BUILT_IN_HEADER {
                    let [from, scope, role] = r.as_slice() else {
                        panic!("{sa}: row {r:?}")
                    };
                    list.push((from.clone(), Grant::BuiltIn(scope.clone(), role.clone())));
                } else {
                    panic!("ServiceAccount {sa}: a table with header {header:?}");
                }
            }
        }
    }
    Documented { workloads, grants }
}

/// Every difference between the render of `combo` and the docs, as messages.
fn check(
    combo: &Combination,
    objects: &[Value],
    doc: &Documented,
    ecoplace_image: &str,
    scheduler_image: &str,
) -> Vec<String> {
    let label = combo.label();
    let parts = combo.parts();
    let mut errors = Vec::new();
    let ws = workloads(objects);

    // Workloads, their ServiceAccounts and images.
    let want: BTreeMap<&(String, String), &String> = doc
        .workloads
        .iter()
        .filter(|(_, (from, _))| parts.contains(from))
        .map(|(k, (_, sa))| (k, sa))
        .collect();
    let got: BTreeSet<(String, String)> = ws
        .iter()
        .map(|w| (w.kind.clone(), w.name.clone()))
        .collect();
    let want_keys: BTreeSet<(String, String)> = want.keys().map(|k| (*k).clone()).collect();
    if got != want_keys {
        errors.push(format!(
            "{label}: workloads {got:?}, docs/install.md says {want_keys:?}"
        ));
    }
    for w in &ws {
        let sa = w.pod_spec["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        if let Some(doc_sa) = want.get(&(w.kind.clone(), w.name.clone()))
            && sa != doc_sa.as_str()
        {
            errors.push(format!(
                "{label}: {} {} runs as ServiceAccount {sa}, docs/install.md says {doc_sa}",
                w.kind, w.name
            ));
        }
        let upstream = w.kind == "Deployment" && w.name == SCHEDULER_DEPLOYMENT;
        for c in containers(w.pod_spec) {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let expected = if upstream {
                scheduler_image
            } else {
                ecoplace_image
            };
            if image != expected {
                errors.push(format!(
                    "{label}: {} {} container {name}: image `{image}`, expected `{expected}`",
                    w.kind, w.name
                ));
            }
            if upstream {
                continue;
            }
            let args = strs(&c["args"]);
            let json_logs = args
                .windows(2)
                .any(|a| a[0] == "--log-format" && a[1] == "json")
                || args.contains(&"--log-format=json");
            if !json_logs {
                errors.push(format!(
                    "{label}: {} {} container {name}: no `--log-format json` in {args:?}",
                    w.kind, w.name
                ));
            }
            let log = c["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|e| e["name"].as_str() == Some("ECOPLACE_LOG"))
                .and_then(|e| e["value"].as_str());
            if log != Some("info") {
                errors.push(format!(
                    "{label}: {} {} container {name}: ECOPLACE_LOG is {log:?}, expected \"info\"",
                    w.kind, w.name
                ));
            }
        }
    }

    // ServiceAccounts and their rights.
    let accounts: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some("ServiceAccount"))
        .map(|o| {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            if ns != NAMESPACE {
                errors.push(format!("{label}: ServiceAccount {name} in namespace {ns}"));
            }
            name.to_string()
        })
        .collect();
    let want_accounts: BTreeSet<String> = want.values().map(|s| (*s).clone()).collect();
    if accounts != want_accounts {
        errors.push(format!(
            "{label}: ServiceAccounts {accounts:?}, the documented workloads run as {want_accounts:?}"
        ));
    }
    let grants = match rendered_grants(objects) {
        Ok(g) => g,
        Err(e) => {
            errors.push(format!("{label}: {e}"));
            return errors;
        }
    };
    for sa in grants.keys() {
        if !accounts.contains(sa) {
            errors.push(format!(
                "{label}: a binding names ServiceAccount {sa}, which is not rendered"
            ));
        }
    }
    for sa in &accounts {
        let got = grants.get(sa).cloned().unwrap_or_default();
        let want: BTreeSet<Grant> = doc
            .grants
            .get(sa)
            .into_iter()
            .flatten()
            .filter(|(from, _)| parts.contains(from))
            .map(|(_, g)| g.clone())
            .collect();
        let extra: Vec<&Grant> = got.difference(&want).collect();
        let missing: Vec<&Grant> = want.difference(&got).collect();
        if !extra.is_empty() || !missing.is_empty() {
            errors.push(format!(
                "{label}: ServiceAccount {sa}: granted but not in docs/install.md: {extra:?}; \
                 in docs/install.md but not granted: {missing:?}"
            ));
        }
    }
    errors
}

#[test]
fn every_combination_renders_as_documented() {
    let kubectl = kubectl();
    let doc = documented(&read("docs/install.md"));
    let ecoplace_image = configured_image("base", "ecoplace", "ecoplace");
    let scheduler_image = configured_image("overlays/extender", SCHEDULER_IMAGE, SCHEDULER_IMAGE);
    let combos = combinations();
    assert!(combos.len() >= 12, "{combos:?}");
    let mut errors = Vec::new();
    let mut differing = 0;
    for combo in &combos {
        let objects = combo.render(&kubectl);
        let found = check(combo, &objects, &doc, &ecoplace_image, &scheduler_image);
        differing += usize::from(!found.is_empty());
        errors.extend(found);
    }
    assert!(
        errors.is_empty(),
        "{differing} of {} combinations differ from docs/install.md ({} differences):\n{}",
        combos.len(),
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn the_checks_catch_a_wrong_image_identity_and_right() {
    // The rebalance CronJob as it was: the unrewritten image, the extender's
    // ServiceAccount, and eviction granted to that always-on identity.
    let objects = yaml_docs(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: ecoplace, namespace: ecoplace-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ecoplace-rebalance}
rules:
  - {apiGroups: [""], resources: [pods/eviction], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ecoplace-rebalance}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ecoplace-rebalance}
subjects: [{kind: ServiceAccount, name: ecoplace, namespace: ecoplace-system}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: ecoplace-rebalance, namespace: ecoplace-system}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: ecoplace
          containers:
            - name: rebalance
              image: ecoplace
              args: [rebalance, --log-format, json]
              env: [{name: ECOPLACE_LOG, value: info}]
"#,
        "fixture",
    );
    let doc = documented(
        "\n## RBAC: what each ServiceAccount may do\n\n\
         | workload | runs | from | ServiceAccount |\n|---|---|---|---|\n\
         | CronJob `ecoplace-rebalance` | x | `components/rebalance` | `ecoplace-rebalance` |\n\n\
         ### ServiceAccount `ecoplace-rebalance`\n\n\
         | from | scope | apiGroup | resource | resourceNames | verbs |\n|---|---|---|---|---|---|\n\
         | `components/rebalance` | cluster | core | `pods/eviction` | | create |\n",
    );
    let combo = Combination {
        root: "base".into(),
        components: vec!["components/rebalance".into()],
    };
    let errors = check(&combo, &objects, &doc, "reg.example/ecoplace:1", "k:1");
    let all = errors.join("\n");
    assert!(
        all.contains("image `ecoplace`, expected `reg.example/ecoplace:1`"),
        "{all}"
    );
    assert!(
        all.contains("runs as ServiceAccount ecoplace, docs/install.md says ecoplace-rebalance"),
        "{all}"
    );
    assert!(
        all.contains("ServiceAccount ecoplace: granted but not in docs/install.md: [Rule(\"cluster\", \"\", \"pods/eviction\""),
        "{all}"
    );
}

#[test]
fn alert_durations_match_failure_modes() {
    let rules = yaml_docs(
        &read("manifests/monitoring/prometheusrule.yaml"),
        "prometheusrule.yaml",
    );
    let mut shipped = BTreeMap::new();
    for group in rules[0]["spec"]["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            if let Some(alert) = r["alert"].as_str() {
                let for_ = r["for"].as_str().unwrap_or("0s").to_string();
                let severity = r["labels"]["severity"].as_str().unwrap_or("").to_string();
                shipped.insert(alert.to_string(), (for_, severity));
            }
        }
    }
    let md = read("docs/failure-modes.md");
    let (header, rows) = tables(&section(&md, "## Alerts"))
        .into_iter()
        .next()
        .expect("the alerts table");
    assert_eq!(header, ["alert", "fires when", "for", "severity"]);
    let documented: BTreeMap<String, (String, String)> = rows
        .into_iter()
        .map(|r| (r[0].clone(), (r[2].clone(), r[3].clone())))
        .collect();
    assert!(shipped.len() >= 9, "{shipped:?}");
    assert_eq!(
        shipped, documented,
        "manifests/monitoring/prometheusrule.yaml (alert -> (for, severity)) vs the table of \
         docs/failure-modes.md#alerts"
    );
}

#[test]
fn paths_are_made_relative() {
    assert_eq!(
        relative(Path::new("/tmp/a/b"), Path::new("/work/m/base")),
        PathBuf::from("../../../work/m/base")
    );
    assert_eq!(
        relative(Path::new("/work/x"), Path::new("/work/m")),
        PathBuf::from("../m")
    );
}
