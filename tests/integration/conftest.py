"""Fixtures for running TaskRuns on the local control plane: the CRD, a namespace with the
chart's RBAC, the operator as a local process, and a started KubernetesBroker."""

from __future__ import annotations

import contextlib
import dataclasses
import json
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

from podiq.kubernetes.storage import RedisStore, StoreSettings
from tests.redisserver import RedisServer

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


@contextlib.contextmanager
def chart_namespace(cluster: Any, prefix: str, env: str | None = None) -> Iterator[str]:
    """A fresh namespace set up with the chart's RBAC for the length of a fixture, named in
    ``env`` (for task modules that read it), and deleted after it without waiting."""
    namespace = namespace_with_chart(cluster, prefix)
    if env:
        os.environ[env] = namespace
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def podiq_namespace(podiq_crd: Any) -> Iterator[str]:
    with chart_namespace(podiq_crd, "podiq-it", "PODIQ_TEST_NAMESPACE") as namespace:
        yield namespace


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


def operator_with_redis(cluster: Any, namespace: str, server: RedisServer, log_dir: Any) -> OperatorProcess:
    operator = OperatorProcess(cluster, namespace, log_dir, env={"PODIQ_REDIS_URL": server.url})
    operator.start()
    time.sleep(1)
    assert operator.process is not None and operator.process.poll() is None, operator.logs()
    return operator


#: The pool the pool-mode tests send to: two workers, four runs each, reclaimed after 3 s of silence.
POOL = "fast"


def pool_manifest(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "podiq.io/v1alpha1",
        "kind": "TaskPool",
        "metadata": {"name": name},
        "spec": {
            "env": [{"name": "PYTHONPATH", "value": str(REPO_ROOT)}],
            "imports": ["tests.integration.pool_tasks"],
            **spec,
        },
    }
    return json.dumps(body)


def worker_pods(cluster: Any, namespace: str, pool: str = POOL) -> list[str]:
    pods = cluster.get("pods", "-n", namespace, "-l", f"podiq.io/pool={pool}")["items"]
    return sorted(p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running")


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """The test's Redis as its admin: what the stored values look like from outside podiq."""
    async with RedisStore(StoreSettings(url=redis_server.url)) as store:
        yield store


@pytest.fixture(scope="session")
def pool_namespace(podiq_crd: Any) -> Iterator[str]:
    with chart_namespace(podiq_crd, "podiq-pool", "PODIQ_TEST_POOL_NAMESPACE") as namespace:
        yield namespace


@pytest.fixture(scope="session")
def pool_operator(
    cluster: Any,
    pool_namespace: str,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator of the pool namespace, with Redis, and its pools: ``fast`` (2 warm workers)
    and ``elastic`` (0 to 2)."""
    operator = operator_with_redis(cluster, pool_namespace, redis_server, tmp_path_factory.mktemp("operator-pool"))
    cluster.apply(
        pool_manifest(POOL, minReplicas=2, maxReplicas=2, concurrency=4, visibilityTimeoutSeconds=3),
        "-n",
        pool_namespace,
    )
    cluster.apply(pool_manifest("elastic", minReplicas=0, maxReplicas=2, concurrency=1), "-n", pool_namespace)
    yield operator
    operator.stop()


@dataclasses.dataclass
class RunMode:
    """How the behaviour tests' runs are carried out: each attempt a Job, or on a pool's warm workers."""

    name: str  # "job" or "pool"
    namespace: str
    operator: OperatorProcess
    cluster: Any

    @property
    def pool(self) -> bool:
        return self.name == "pool"

    def jobs_of(self, taskrun: str) -> list[dict[str, Any]]:
        return self.cluster.get("jobs", "-n", self.namespace, "-l", f"podiq.io/taskrun={taskrun}")["items"]

    def ran_where_it_should(self, name: str, status: dict[str, Any]) -> None:
        """Job mode: the attempt's Job and its pod; pool mode: a worker of the pool and no Job at all."""
        attempts = status["attempts"]
        if self.pool:
            assert "jobName" not in status and status["podName"].startswith(f"podiq-pool-{POOL}-"), status
            assert not self.jobs_of(name)
        else:
            assert status["jobName"] == f"{name}-a{attempts}", status
            assert status["podName"].startswith(status["jobName"]), status
            assert len(self.jobs_of(name)) == attempts


@pytest.fixture(params=["job", "pool"])
def run_mode(request: pytest.FixtureRequest, cluster: Any) -> RunMode:
    """Both modes, one after the other; the pool's namespace, operator and Redis start only when asked for."""
    if request.param == "job":
        return RunMode(
            "job", request.getfixturevalue("podiq_namespace"), request.getfixturevalue("podiq_operator"), cluster
        )
    operator = request.getfixturevalue("pool_operator")
    namespace = request.getfixturevalue("pool_namespace")
    cluster.wait_for(
        f"two workers of pool {POOL}", lambda: len(worker_pods(cluster, namespace)) == 2 or None, timeout=90
    )
    return RunMode("pool", namespace, operator, cluster)


@pytest.fixture
async def k8s_broker(cluster: Any, podiq_operator: OperatorProcess, podiq_namespace: str) -> AsyncIterator[Any]:
    """The test tasks' KubernetesBroker, started against the local control plane."""
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    from tests.integration import k8s_tasks

    k8s_tasks.broker.namespace = podiq_namespace
    k8s_tasks.broker.kubeconfig = str(cluster.kubeconfig)
    async with k8s_tasks.broker:
        yield k8s_tasks.broker


@pytest.fixture
async def mode_broker(cluster: Any, run_mode: RunMode, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The test tasks' KubernetesBroker in ``run_mode``: in pool mode every task goes to pool
    ``fast`` (its workers import the tasks' module by name) with the pool namespace's Redis."""
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    from tests.integration import k8s_tasks

    broker = k8s_tasks.broker
    saved = broker.namespace, broker.kubeconfig, broker.defaults, broker.store_settings
    broker.namespace, broker.kubeconfig = run_mode.namespace, str(cluster.kubeconfig)
    if run_mode.pool:
        redis: RedisServer = request.getfixturevalue("redis_server")
        broker.defaults = broker.defaults.model_copy(update={"pool": POOL})
        broker.store_settings = StoreSettings(url=redis.url)
    try:
        async with broker:
            yield broker
    finally:
        broker.namespace, broker.kubeconfig, broker.defaults, broker.store_settings = saved


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
