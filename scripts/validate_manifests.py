#!/usr/bin/env python3
"""Offline validation of manifests/ (run by scripts/validate-manifests, in its venv).

Every kustomization.yaml (Kustomization or Component) under manifests/ is read: each
resource, component and generator file it lists must exist, and every file under
manifests/ must be listed by one. Documents of built-in kinds are validated strictly
(unknown fields are errors) against the Kubernetes OpenAPI schemas with
kubernetes-validate; Prometheus Operator kinds (CRDs, no schema offline) are parsed and
checked for the fields the operator needs; JSON files (the Grafana dashboard) must parse.
When `kubectl` is on the PATH, each Kustomization and the extender overlay with the
monitoring component are rendered with `kubectl kustomize` and the output is validated
the same way, plus where each object lands (namespaces).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate as kv
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
# The pinned kube-scheduler's minor (overlays/extender) and the newest schemas known.
K8S_VERSIONS = sorted({"1.34.0", kv.latest_version()})
OPERATOR_API = "monitoring.coreos.com/v1"
KUSTOMIZE_API = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
KUSTOMIZE_KEYS = {
    "apiVersion", "kind", "namespace", "namePrefix", "nameSuffix", "labels",
    "commonLabels", "commonAnnotations", "resources", "components", "images",
    "configMapGenerator", "secretGenerator", "generatorOptions", "patches", "replicas",
    "replacements",
}

errors = []


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml_docs(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(rel(path), f"cannot parse YAML: {e}")
        return []


def check_operator_kind(where, doc):
    """ServiceMonitor / PrometheusRule: no schema offline, so the essentials by hand."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return fail(where, "spec missing")
    if doc["kind"] == "ServiceMonitor":
        if not isinstance(spec.get("selector"), dict):
            fail(where, "spec.selector missing")
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            return fail(where, "spec.endpoints must be a non-empty list")
        for i, e in enumerate(endpoints):
            if not isinstance(e, dict) or not (e.get("port") or e.get("targetPort")):
                fail(where, f"spec.endpoints[{i}] needs port")
        return None
    groups = spec.get("groups")
    if not isinstance(groups, list) or not groups:
        return fail(where, "spec.groups must be a non-empty list")
    seen = set()
    for g in groups:
        if not isinstance(g, dict) or not g.get("name") or not isinstance(g.get("rules"), list):
            fail(where, f"group needs name and rules: {g!r}")
            continue
        for r in g["rules"]:
            name = r.get("alert") or r.get("record")
            if not name or ("alert" in r) == ("record" in r):
                fail(where, f"rule needs exactly one of alert/record: {r!r}")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                fail(where, f"rule {name}: expr missing")
            unknown = set(r) - {"alert", "record", "expr", "for", "labels", "annotations",
                                "keep_firing_for"}
            if unknown:
                fail(where, f"rule {name}: unknown fields {sorted(unknown)}")
            if name in seen and "alert" in r:
                fail(where, f"alert {name} defined twice")
            seen.add(name)
    return None


OCM_GROUP = "cluster.open-cluster-management.io"
OCM_KINDS = {"Placement": "v1beta1", "ManagedClusterSetBinding": "v1beta2"}


def check_ocm_kind(where, doc):
    """OCM kinds (CRDs, no schema offline): parsed and the essentials checked by hand."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return fail(where, "spec missing")
    if doc["kind"] == "ManagedClusterSetBinding":
        if not isinstance(spec.get("clusterSet"), str):
            fail(where, "spec.clusterSet must be a string")
        return None
    policy = spec.get("prioritizerPolicy") or {}
    if policy.get("mode", "Additive") not in ("Additive", "Exact"):
        fail(where, "spec.prioritizerPolicy.mode must be Additive or Exact")
    for i, c in enumerate(policy.get("configurations") or []):
        sc = (c or {}).get("scoreCoordinate") or {}
        if sc.get("type") not in ("BuiltIn", "AddOn"):
            fail(where, f"configurations[{i}].scoreCoordinate.type must be BuiltIn or AddOn")
        if sc.get("type") == "AddOn":
            addon = sc.get("addOn") or {}
            if not (addon.get("resourceName") and addon.get("scoreName")):
                fail(where, f"configurations[{i}]: addOn needs resourceName and scoreName")
        weight = c.get("weight", 1)
        if not isinstance(weight, int) or not -10 <= weight <= 10:
            fail(where, f"configurations[{i}].weight must be an integer in -10..10")
    return None


def validate_doc(where, doc):
    if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
        return fail(where, "not a Kubernetes object (apiVersion and kind needed)")
    name = (doc.get("metadata") or {}).get("name")
    where = f"{where} {doc['kind']}/{name}"
    if not name:
        return fail(where, "metadata.name missing")
    if doc["apiVersion"] == OPERATOR_API and doc["kind"] in ("ServiceMonitor", "PrometheusRule"):
        return check_operator_kind(where, doc)
    if doc["kind"] in OCM_KINDS and doc["apiVersion"] == f"{OCM_GROUP}/{OCM_KINDS[doc['kind']]}":
        return check_ocm_kind(where, doc)
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            fail(where, f"Kubernetes {version}: {path}: {e.message}")
        except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as e:
            fail(where, f"Kubernetes {version}: {e}")
    return None


def generated_configmap(where, base_dir, gen, namespace):
    """The ConfigMap a configMapGenerator entry makes (files only), checking each file."""
    data = {}
    for entry in gen.get("files", []):
        key, _, path = entry.rpartition("=")
        path = base_dir / path
        key = key or path.name
        if not path.is_file():
            fail(where, f"configMapGenerator {gen.get('name')}: {entry}: no such file")
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            try:
                json.loads(text)
            except json.JSONDecodeError as e:
                fail(rel(path), f"invalid JSON: {e}")
        data[key] = text
    meta = {"name": gen.get("name"), "labels": (gen.get("options") or {}).get("labels", {})}
    ns = gen.get("namespace") or namespace
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def check_kustomization(kdir, listed):
    """Checks one kustomization directory; adds the files it lists to `listed`."""
    kfile = kdir / "kustomization.yaml"
    where = rel(kfile)
    docs = load_yaml_docs(kfile)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return fail(where, "must hold exactly one YAML mapping")
    k = docs[0]
    kind = k.get("kind")
    if KUSTOMIZE_API.get(kind) != k.get("apiVersion"):
        fail(where, f"kind/apiVersion must be one of {KUSTOMIZE_API}")
    unknown = set(k) - KUSTOMIZE_KEYS
    if unknown:
        fail(where, f"unknown keys {sorted(unknown)}")
    count = 0
    for field, want in (("resources", "Kustomization"), ("components", "Component")):
        for entry in k.get(field, []):
            path = (kdir / entry).resolve()
            if path.is_dir():
                sub = load_yaml_docs(path / "kustomization.yaml") if (
                    path / "kustomization.yaml").is_file() else []
                got = sub[0].get("kind") if sub and isinstance(sub[0], dict) else None
                if got != want:
                    fail(where, f"{field}: {entry}: needs a {want} there, found {got}")
            elif path.is_file():
                listed.add(path)
                if field == "components":
                    fail(where, f"components: {entry}: must be a directory")
                for doc in load_yaml_docs(path):
                    validate_doc(rel(path), doc)
                    count += 1
            else:
                fail(where, f"{field}: {entry}: no such file or directory")
    for gen in k.get("configMapGenerator", []):
        for entry in gen.get("files", []):
            listed.add((kdir / entry.rpartition("=")[2]).resolve())
        validate_doc(where, generated_configmap(where, kdir, gen, k.get("namespace")))
        count += 1
    for image in k.get("images", []):
        if not image.get("name") or not (image.get("newTag") or image.get("newName")
                                         or image.get("digest")):
            fail(where, f"images: {image!r} needs name and newName/newTag/digest")
    return count


def render(kdir):
    """Rendered documents of a kustomization, or None if kubectl failed."""
    out = subprocess.run(["kubectl", "kustomize", str(kdir)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        fail(rel(kdir), f"kubectl kustomize: {out.stderr.strip()}")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def check_rendered(label, docs):
    for doc in docs:
        validate_doc(f"{label} (rendered)", doc)
        meta = doc.get("metadata") or {}
        ns, name, kind = meta.get("namespace"), meta.get("name"), doc.get("kind")
        cluster_scoped = kind in ("Namespace", "ClusterRole", "ClusterRoleBinding")
        want = "kube-system" if name and name.endswith("-extension-apiserver-authentication-reader") \
            else None if cluster_scoped else "ecoplace-system"
        if ns != want:
            fail(f"{label} (rendered) {kind}/{name}", f"namespace {ns}, expected {want}")


def main():
    kdirs = sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))
    if not kdirs:
        fail("manifests", "no kustomization.yaml found")
    listed = set()
    count = 0
    for kdir in kdirs:
        count += check_kustomization(kdir, listed) or 0
    for path in sorted(MANIFESTS.rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json") and path.name != "kustomization.yaml" \
                and path.resolve() not in listed:
            fail(rel(path), "not listed by any kustomization.yaml")
    rendered = 0
    if shutil.which("kubectl"):
        for kdir in kdirs:
            if load_yaml_docs(kdir / "kustomization.yaml")[0].get("kind") == "Kustomization":
                docs = render(kdir) or []
                check_rendered(rel(kdir), docs)
                rendered += len(docs)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump({
                "apiVersion": KUSTOMIZE_API["Kustomization"], "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS / "overlays/extender", tmp)],
                "components": [os.path.relpath(MANIFESTS / "monitoring", tmp),
                               os.path.relpath(MANIFESTS / "components/rebalance", tmp)],
            }))
            docs = render(Path(tmp)) or []
            check_rendered("overlays/extender + monitoring + rebalance", docs)
            rendered += len(docs)
    else:
        print("validate-manifests: kubectl not found; kustomizations checked file by file only")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"validate-manifests: {len(kdirs)} kustomizations, {count} documents from files"
          f" and {rendered} rendered, valid for Kubernetes {', '.join(K8S_VERSIONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
