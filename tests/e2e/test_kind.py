"""The same end-to-end scenario on a kind cluster, for machines with Docker and kind.

Builds the runtime and operator images from their Dockerfiles, loads them into kind and
installs the chart with them. Where Docker or kind is missing (CI here), these tests are
skipped; the local control plane runs the same scenario in test_helm_local.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import scenario


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        shutil.which("kind") is None or not _docker_works(),
        reason="needs `kind` and a running Docker engine; test_helm_local.py runs this scenario on the local control plane",
    ),
]

IMAGE_TAG = "e2e"


class KindCluster:
    def __init__(self, name: str, kubeconfig: Path) -> None:
        self.name = name
        self.kubeconfig = kubeconfig

    def _run(self, tool: str, args: tuple[str, ...], check: bool, timeout: float, input: str | None) -> Any:
        done = subprocess.run([tool, "--kubeconfig", str(self.kubeconfig), *args], capture_output=True, text=True,
                              timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None) -> Any:
        return self._run("kubectl", args, check, timeout, input)

    def helm(self, *args: str, check: bool = True, timeout: float = 180, input: str | None = None) -> Any:
        return self._run("helm", args, check, timeout, input)


@pytest.fixture(scope="module")
def kind_cluster() -> Iterator[KindCluster]:
    name = f"podiq-{uuid.uuid4().hex[:6]}"
    kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
    subprocess.run(["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", "120s"], check=True)
    try:
        for image, dockerfile in (
            ("podiq/runtime", "runtime/Dockerfile"),
            ("podiq/operator", "operator/Dockerfile"),
            ("podiq/runtime-tasks", "tests/e2e/Dockerfile.tasks"),
        ):
            subprocess.run(["docker", "build", "-t", f"{image}:{IMAGE_TAG}", "-f", dockerfile, "."], cwd=scenario.REPO_ROOT, check=True)
            subprocess.run(["kind", "load", "docker-image", f"{image}:{IMAGE_TAG}", "--name", name], check=True)
        yield KindCluster(name, kubeconfig)
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", name], check=False)


def test_tasks_run_through_the_chart_on_kind(kind_cluster: KindCluster) -> None:
    # Test tasks come with the repository, so the runtime image gets them through a derived image.
    scenario.install(
        kind_cluster,
        "operator.image.repository=podiq/operator", f"operator.image.tag={IMAGE_TAG}",
        "runtime.image.repository=podiq/runtime-tasks", f"runtime.image.tag={IMAGE_TAG}",
        "operator.image.pullPolicy=Never", "runtime.image.pullPolicy=Never",
    )
    assert scenario.operator_pod(kind_cluster)["status"]["phase"] == "Running"
    outcome = scenario.wait(scenario.run_tasks(str(kind_cluster.kubeconfig)))
    assert outcome["total"] == 6 and isinstance(outcome["error"], ValueError) and outcome["steps"] == 3
