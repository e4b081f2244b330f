"""The chart without Helm: its values, its CRD copy, and rules the templates must keep.

Rendering is covered where Helm is available (end-to-end); these checks need nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from podiq_operator.config import JobConfig, OperatorConfig

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "podiq"


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def template(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "podiq"
    assert chart["version"] and chart["appVersion"]


def test_chart_crd_is_the_crds_folder_copy() -> None:
    assert (CHART / "crds" / "taskrun.yaml").read_bytes() == (ROOT / "crds" / "taskrun.yaml").read_bytes()
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(p.name for p in (ROOT / "crds").iterdir())


def test_values_defaults() -> None:
    v = values()
    assert v["watchNamespaces"] == []
    assert v["operator"]["replicas"] == 1 and v["peering"]["enabled"] is False
    assert v["operator"]["image"]["pullPolicy"] and v["runtime"]["image"]["pullPolicy"]
    assert v["metrics"]["enabled"] is True
    assert v["runtime"]["serviceAccountName"] == JobConfig().runtime_service_account
    assert v["runtime"]["deadlineGraceSeconds"] == JobConfig().deadline_grace_seconds
    assert v["operator"]["maxWorkers"] == OperatorConfig().api.max_workers
    assert v["metrics"]["port"] == OperatorConfig().metrics_port
    assert f":{v['health']['port']}/healthz" in str(OperatorConfig().liveness_endpoint)


def test_deployment_passes_settings_the_operator_reads() -> None:
    deployment = template("deployment.yaml")
    for name in (
        "PODIQ_WATCH_NAMESPACES",
        "PODIQ_RUNTIME_IMAGE",
        "PODIQ_RUNTIME_SERVICE_ACCOUNT",
        "PODIQ_METRICS_PORT",
        "PODIQ_LIVENESS",
        "PODIQ_PEERING",
        "PODIQ_EVENTS",
        "PODIQ_MAX_WORKERS",
    ):
        assert f"name: {name}" in deployment


def test_operator_pod_is_restricted() -> None:
    deployment = template("deployment.yaml")
    for line in (
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        'drop: ["ALL"]',
        "type: RuntimeDefault",
        "mountPath: /tmp",
        "path: /healthz",
    ):
        assert line in deployment, line


def test_runtime_role_only_reads_taskruns_and_writes_their_status() -> None:
    rbac = template("rbac.yaml")
    start = rbac.index('{{- define "podiq.runtimeRules" -}}') + len('{{- define "podiq.runtimeRules" -}}')
    parsed = yaml.safe_load(rbac[start : rbac.index("{{- end -}}", start)])
    assert parsed == [
        {"apiGroups": ["podiq.io"], "resources": ["taskruns"], "verbs": ["get"]},
        {"apiGroups": ["podiq.io"], "resources": ["taskruns/status"], "verbs": ["get", "patch", "update"]},
    ]


def test_operator_rules_are_least_privilege() -> None:
    rbac = template("rbac.yaml")
    start = rbac.index('{{- define "podiq.operatorRules" -}}') + len('{{- define "podiq.operatorRules" -}}')
    body = rbac[start : rbac.index("{{- if .Values.peering.enabled }}", start)]
    # With the operator scaling pools (the default): the first branch of pools.scaling's test.
    # KEDA's rules, without scaling and pod patches, are checked rendered (test_chart_pools.py).
    body = re.sub(
        r'\{\{- if ne \.Values\.pools\.scaling "keda" \}\}\n(.*?)\{\{- else \}\}\n.*?\{\{- end \}\}\n',
        r"\1",
        body,
        flags=re.S,
    )
    rules = yaml.safe_load(body)
    granted = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {
        ("podiq.io", "taskruns"): {"get", "list", "watch", "patch", "delete"},
        ("podiq.io", "taskruns/status"): {"get", "patch", "update"},
        ("podiq.io", "taskruns/finalizers"): {"update"},
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("podiq.io", "taskpools"): {"get", "list"},
        ("podiq.io", "taskpools/status"): {"get", "patch"},
        ("podiq.io", "taskpools/finalizers"): {"update"},
        ("apps", "deployments"): {"create", "get"},
        ("apps", "deployments/scale"): {"get", "patch"},
        ("", "pods"): {"get", "list", "watch", "patch"},  # patch: a pool worker's pod-deletion-cost
        ("", "pods/log"): {"get"},
        ("", "events"): {"create", "patch", "list", "watch"},
    }
    assert "secrets" not in rbac and '"*"' not in rbac


def test_peering_objects_only_when_enabled() -> None:
    peering = template("peering.yaml")
    assert peering.index("{{- if .Values.peering.enabled }}") < peering.index("kind: CustomResourceDefinition")
    assert "clusterkopfpeerings.kopf.dev" in peering and "kopfpeerings.kopf.dev" in peering


def _helm() -> str | None:
    """PODIQ_HELM, else the helm that tests/cluster builds, else one on PATH."""
    import os
    import shutil

    from tests.cluster.building import bin_dir

    built = bin_dir() / "helm"
    return os.environ.get("PODIQ_HELM") or (str(built) if built.exists() else None) or shutil.which("helm")


def _render(*sets: str) -> list[dict]:
    import subprocess

    helm = _helm()
    args = [helm, "template", "r", str(CHART), "--namespace", "podiq-system", "--kube-version", "1.31.0"]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    return [d for d in yaml.safe_load_all(out) if d]


def test_rendered_chart_when_helm_is_available() -> None:
    import pytest

    if _helm() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the chart: build helm with `python -m tests.cluster build`")
        pytest.skip("helm is not built yet: run `python -m tests.cluster build` (or set PODIQ_HELM)")
    cluster = {(d["kind"], d["metadata"].get("namespace")) for d in _render()}
    assert ("ClusterRole", None) in cluster and ("Role", "podiq-system") in cluster
    scoped = _render("watchNamespaces={a,b}")
    kinds = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in scoped}
    assert not any(k == "ClusterRole" for k, _, _ in kinds)
    assert {
        ("Role", "a", "r-podiq-operator"),
        ("Role", "b", "podiq-runtime"),
        ("ServiceAccount", "b", "podiq-runtime"),
    } <= kinds
    (deployment,) = [d for d in scoped if d["kind"] == "Deployment"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PODIQ_WATCH_NAMESPACES"] == "a,b"
    assert OperatorConfig.from_env(env).namespaces == ("a", "b")


def test_every_namespace_watched_the_operator_may_set_namespaces_up_and_grant_nothing_else() -> None:
    import pytest

    if _helm() is None:
        pytest.skip("helm is not built yet: run `python -m tests.cluster build` (or set PODIQ_HELM)")
    rendered = _render()
    (operator,) = [d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "r-podiq-operator"]
    rbac_rules = [
        r
        for r in operator["rules"]
        if set(r["apiGroups"]) & {"", "rbac.authorization.k8s.io"}
        and set(r["resources"]) & {"serviceaccounts", "rolebindings", "clusterroles"}
    ]
    assert rbac_rules == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["r-podiq-runtime", "r-podiq-scheduler"],
        },
    ]
    roles = {d["metadata"]["name"]: d["rules"] for d in rendered if d["kind"] == "ClusterRole"}
    assert {"r-podiq-runtime", "r-podiq-scheduler"} <= roles.keys()
    assert [r["verbs"] for r in roles["r-podiq-runtime"]] == [["get"], ["get", "patch", "update"]]
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    config = OperatorConfig.from_env(env)
    setup = config.namespace_setup
    assert setup.provision and setup.runtime_cluster_role == "r-podiq-runtime"
    assert (setup.scheduler_service_account, setup.scheduler_cluster_role) == ("podiq-scheduler", "r-podiq-scheduler")
    assert (
        setup.excluded == {"kube-system", "kube-public", "kube-node-lease"}
        and config.jobs.pending_deadline_seconds == 600
    )
    kinds = {d["kind"] for d in rendered}
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds

    scoped = _render("watchNamespaces={a}", "excludedNamespaces=null")
    (deployment,) = [d for d in scoped if d["kind"] == "Deployment"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "PODIQ_PROVISION" not in env and OperatorConfig.from_env(env).namespace_setup.excluded == frozenset()
    assert not [d for d in scoped if "bind" in str(d.get("rules"))]
