"""The end-to-end scenario on a kind cluster: real containers on a real kubelet.

tests/kind builds the node image and podiq's images from their Dockerfiles offline, creates
the cluster and loads the images with `kind load docker-image`; here the chart is installed
into namespaces that enforce Pod Security "restricted" and tasks run through it. These
tests run with PODIQ_KIND=1 (tests/kind/README.md); in CI a missing prerequisite fails them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import scenario
from tests.kind import images
from tests.kind.cluster import KindCluster

pytestmark = [pytest.mark.e2e, pytest.mark.kind, pytest.mark.timeout(900)]


def helm_sets() -> list[str]:
    """The chart values the kind test installs with: the locally built images, never pulled."""
    operator, operator_tag = images.OPERATOR.split(":")
    runtime, runtime_tag = images.TASKS.split(":")
    return [
        f"operator.image.repository={operator}", f"operator.image.tag={operator_tag}",
        f"runtime.image.repository={runtime}", f"runtime.image.tag={runtime_tag}",
        "operator.image.pullPolicy=Never", "runtime.image.pullPolicy=Never",
    ]


@pytest.fixture(scope="module")
def installed(kind_cluster: KindCluster) -> Iterator[KindCluster]:
    scenario.install(kind_cluster, *helm_sets())
    yield kind_cluster
    kind_cluster.helm("uninstall", scenario.RELEASE, "--namespace", scenario.OPERATOR_NAMESPACE, "--wait",
                      check=False)
    for namespace in (scenario.TASK_NAMESPACE, scenario.OPERATOR_NAMESPACE):
        kind_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_operator_runs_in_a_restricted_namespace(installed: Any) -> None:
    pod = scenario.operator_pod(installed)
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["containers"][0]["image"] == images.OPERATOR


def test_tasks_run_through_the_chart_on_kind(installed: Any) -> None:
    outcome = scenario.wait(scenario.run_tasks(str(installed.kubeconfig)))
    assert outcome["total"] == 6
    assert isinstance(outcome["error"], ValueError) and "Negative values not allowed" in str(outcome["error"])
    assert outcome["requeued"].startswith("Processed: retry_me")
    assert outcome["steps"] == 3
