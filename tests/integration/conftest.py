"""Fixtures for running TaskRuns on the local control plane: the CRD, a namespace with the
chart's RBAC, the operator as a local process, and a started KubernetesBroker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD = REPO_ROOT / "crds" / "taskrun.yaml"
POOL_CRD = REPO_ROOT / "crds" / "taskpool.yaml"
CHART = REPO_ROOT / "charts" / "podiq"


@pytest.fixture(scope="session")
def podiq_crd(cluster: Any) -> Any:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD), "-f", str(POOL_CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/taskruns.podiq.io", "crd/taskpools.podiq.io"
    )
    return cluster


def namespace_with_chart(cluster: Any, prefix: str, *, peering: bool = False) -> str:
    """A new namespace with the chart's service accounts and RBAC for the operator and task
    pods; with ``peering``, also kopf's peering CRDs and the namespace's KopfPeering."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    sets = ["--set", f"watchNamespaces={{{namespace}}}"]
    templates = ["serviceaccounts.yaml", "rbac.yaml"]
    if peering:
        sets += ["--set", "peering.enabled=true", "--set", f"peering.name={namespace}"]
        templates.append("peering.yaml")
    rendered = cluster.helm(
        "template",
        "podiq",
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        "1.37.2",
        *sets,
        *(arg for template in templates for arg in ("--show-only", f"templates/{template}")),
    ).stdout
    if peering:
        # The KopfPeering kind exists only once its CRD is established: apply, wait, apply again.
        cluster.kubectl("apply", "-f", "-", "-n", namespace, input=rendered, check=False)
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    cluster.apply(rendered, "-n", namespace)
    return namespace


@pytest.fixture(scope="session")
def podiq_namespace(podiq_crd: Any) -> Iterator[str]:
    namespace = namespace_with_chart(podiq_crd, "podiq-it")
    os.environ["PODIQ_TEST_NAMESPACE"] = namespace
    yield namespace
    podiq_crd.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


class OperatorProcess:
    """`podiq operator` for one namespace, as a local process with the admin kubeconfig."""

    def __init__(self, cluster: Any, namespace: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_dir = log_dir
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")
        env = {
            **os.environ,
            **self.cluster.env,
            "PODIQ_RUNTIME_IMAGE": "podiq-runtime:test",
            "PODIQ_METRICS_PORT": "0",
            "PODIQ_LIVENESS": "",
            **self.env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podiq_operator", "-n", self.namespace],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as a crashed or evicted operator."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


@pytest.fixture(scope="session")
def podiq_operator(
    cluster: Any, podiq_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(cluster, podiq_namespace, tmp_path_factory.mktemp("operator"))
    operator.start()
    time.sleep(1)
    assert operator.process is not None and operator.process.poll() is None, operator.logs()
    yield operator
    operator.stop()


@pytest.fixture
async def k8s_broker(cluster: Any, podiq_operator: OperatorProcess, podiq_namespace: str) -> AsyncIterator[Any]:
    """The test tasks' KubernetesBroker, started against the local control plane."""
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    from tests.integration import k8s_tasks

    k8s_tasks.broker.namespace = podiq_namespace
    k8s_tasks.broker.kubeconfig = str(cluster.kubeconfig)
    async with k8s_tasks.broker:
        yield k8s_tasks.broker


def recorded_running_from_its_pod(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    """Wait until the operator records the running attempt with its pod; returns the status.

    The runtime writes nothing until the task ends, and without its pod the operator records
    an attempt only after 10 s: seeing it sooner shows the operator saw the pod appear.
    """

    def running() -> dict[str, Any] | None:
        status = cluster.get("taskrun", name, "-n", namespace).get("status", {})
        return status if status.get("phase") == "Running" and status.get("podName") else None

    status = cluster.wait_for("the attempt recorded as Running with its pod", running, timeout=6)
    assert status["podName"].startswith(status["jobName"]) and "completionTime" not in status
    return status
