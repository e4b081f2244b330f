"""`helm install charts/podiq` on the local control plane: the operator runs as a pod with
its service account, and tasks run through it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import yaml

from tests.e2e import scenario

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def installed(cluster: Any, podiq_crd: Any) -> Any:
    # Pods here are local processes on the host network, so the operator's endpoints stay on loopback.
    scenario.install(cluster, "operator.listenAddress=127.0.0.1", "metrics.port=18080", "health.port=18081")
    yield cluster
    scenario.uninstall(cluster)


def test_operator_runs_as_a_restricted_pod_with_its_own_service_account(installed: Any) -> None:
    pod = scenario.operator_pod(installed)
    assert pod["status"]["phase"] == "Running"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "podiq-operator"
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["capabilities"]["drop"] == ["ALL"]


def test_tasks_run_through_the_installed_operator(installed: Any) -> None:
    outcome = scenario.wait(scenario.run_tasks(str(installed.kubeconfig)))
    assert outcome["total"] == 6
    assert isinstance(outcome["error"], ValueError) and "Negative values not allowed" in str(outcome["error"])
    assert outcome["requeued"].startswith("Processed: retry_me")
    assert outcome["steps"] == 3
    runs = json.loads(installed.kubectl("get", "taskruns", "-n", scenario.TASK_NAMESPACE, "-o", "json").stdout)["items"]
    assert {r["status"]["phase"] for r in runs} == {"Succeeded", "Failed"}
    printed = installed.kubectl("get", "taskruns", "-n", scenario.TASK_NAMESPACE).stdout
    assert {"TASK", "PHASE", "PROGRESS", "ATTEMPTS", "DURATION", "AGE"} <= set(printed.split("\n")[0].split())


def test_operator_serves_prometheus_metrics(installed: Any) -> None:
    body = urllib.request.urlopen("http://127.0.0.1:18080/metrics", timeout=10).read().decode()
    assert "podiq_taskruns_in_flight" in body


def test_rendered_chart_passes_server_side_validation(cluster: Any, podiq_crd: Any) -> None:
    """The API server's own schema check of every object the chart renders, in each RBAC shape.

    Peering objects are left out: their CRDs come with the same render, and a dry run
    creates no CRD to check them against.
    """
    for sets in ([], ["--set", "watchNamespaces={a,b}"], ["--set", "peering.enabled=true"]):
        rendered = cluster.helm(
            "template", "check", str(scenario.CHART), "--namespace", "default", "--kube-version", "1.37.2", *sets
        ).stdout
        objects = [d for d in yaml.safe_load_all(rendered) if d and not d["kind"].endswith("KopfPeering")]
        assert len(objects) >= 8
        applied = cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects), check=False
        )
        # Namespaces a and b do not exist; everything else must be accepted as it is.
        problems = [line for line in applied.stderr.splitlines() if 'namespaces "a" not found' not in line
                    and 'namespaces "b" not found' not in line]
        assert not problems, applied.stderr


def test_helm_lint_passes(cluster: Any) -> None:
    linted = cluster.helm("lint", str(scenario.CHART), "--strict", check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
