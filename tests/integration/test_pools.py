"""Warm pools on the local control plane with a real Redis: the operator's worker Deployment
(its pods run as host processes), pool runs end to end, a worker SIGKILLed mid-run, cancel and
timeout inside a worker, and a client that died between creating a TaskRun and enqueuing it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podiq import TaskCancelledError
from podiq.exceptions import TaskTimeoutError
from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.dispatch import PoolQueue
from podiq.kubernetes.storage import RedisStore, StoreSettings
from tests.integration.conftest import OperatorProcess, worker_pods
from tests.integration.test_storage import taskrun
from tests.redisserver import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT = 60


@pytest.fixture
async def pool_broker(
    cluster: Any,
    pool_operator: OperatorProcess,
    pool_namespace: str,
    redis_server: RedisServer,
) -> AsyncIterator[KubernetesBroker]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    from tests.integration import pool_tasks

    cluster.wait_for(
        "two workers of pool fast", lambda: len(worker_pods(cluster, pool_namespace)) == 2 or None, timeout=WAIT
    )
    broker = pool_tasks.broker
    broker.namespace, broker.kubeconfig = pool_namespace, str(cluster.kubeconfig)
    broker.store_settings = StoreSettings(url=redis_server.url)
    async with broker:
        yield broker


async def test_pool_runs_end_to_end_without_a_job(
    pool_broker: KubernetesBroker, cluster: Any, pool_namespace: str
) -> None:
    from tests.integration import pool_tasks as t

    assert await (await t.add.kiq(1, 2)).wait_result(timeout=WAIT) == 3
    handle = await t.where.kiq()
    pod = await handle.wait_result(timeout=WAIT)
    assert pod in worker_pods(cluster, pool_namespace)
    status = taskrun(cluster, pool_namespace, handle.task_id)["status"]
    assert status["phase"] == "Succeeded" and status["podName"] == pod and status["attempts"] == 1
    assert "jobName" not in status and not cluster.get("jobs", "-n", pool_namespace)["items"][:0]
    assert not [
        j
        for j in cluster.get("jobs", "-n", pool_namespace)["items"]
        if j["metadata"]["name"].startswith(handle.task_id)
    ]
    with pytest.raises(ValueError, match="boom"):
        await (await t.fail.kiq("boom")).wait_result(timeout=WAIT)
    shown = cluster.kubectl("get", "taskruns", "-n", pool_namespace, handle.task_id, "-o", "wide").stdout
    assert "fast" in shown and pod in shown
    many = [await t.add.kiq(i, i) for i in range(20)]
    assert [await h.wait_result(timeout=WAIT) for h in many] == [2 * i for i in range(20)]
    # Without a pool, a run is a Job as before.
    job = await (await t.in_a_job.kiq()).wait_result(timeout=WAIT)
    assert job.endswith("-a1")


def etcd_taskrun_reads(cluster: Any) -> int:
    """Reads of single TaskRuns the API server made from etcd (reads from its watch cache not counted)."""
    metrics = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    return sum(
        int(count)
        for labels, count in re.findall(r"^etcd_requests_total\{([^}]*)\} (\d+)", metrics, re.M)
        if 'resource="taskruns"' in labels and 'operation="get"' in labels
    )


async def test_workers_read_their_runs_from_the_api_servers_cache_not_etcd(
    pool_broker: KubernetesBroker, cluster: Any, pool_namespace: str
) -> None:
    from tests.integration import pool_tasks as t

    before = etcd_taskrun_reads(cluster)
    handles = [await t.add.kiq(i, 1) for i in range(20)]
    assert [await h.wait_result(timeout=WAIT) for h in handles] == [i + 1 for i in range(20)]
    assert etcd_taskrun_reads(cluster) - before <= 5  # a read from etcd each was 20
    labels = taskrun(cluster, pool_namespace, handles[0].task_id)["metadata"]["labels"]
    assert labels["podiq.io/pool"] == "fast"


def pid_of(pod: str) -> int:
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            text = environ.read_bytes()
            cmdline = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if f"PODIQ_POD_NAME={pod}".encode() in text.split(b"\0") and b"podiq.runtime.worker" in cmdline:
            return int(environ.parent.name)
    raise AssertionError(f"no worker process of pod {pod}")


async def claimed_by(admin: RedisStore, namespace: str, name: str, attempt: int = 1) -> str:
    queue = PoolQueue(admin, namespace, "fast")
    for _ in range(100):
        marker = await queue.marker(name, attempt) or ""
        if marker.startswith("claimed:"):
            return marker.partition(":")[2]
        await asyncio.sleep(0.1)
    raise AssertionError(f"attempt {attempt} of {name} was not claimed: {marker!r}")


async def test_a_run_of_a_sigkilled_worker_is_reclaimed_and_finishes_once(
    pool_broker: KubernetesBroker,
    cluster: Any,
    pool_namespace: str,
    admin: RedisStore,
) -> None:
    from tests.integration import pool_tasks as t

    handle = await t.nap.kiq(4)
    victim = await claimed_by(admin, pool_namespace, handle.task_id)
    await asyncio.sleep(0.5)
    os.kill(pid_of(victim), signal.SIGKILL)
    killed_at = time.monotonic()
    pod = await handle.wait_result(timeout=WAIT)
    assert time.monotonic() - killed_at >= 3  # reclaimed after the visibility timeout, not before
    status = taskrun(cluster, pool_namespace, handle.task_id)["status"]
    assert status["phase"] == "Succeeded" and status["attempts"] == 2 and status["retries"] == 1
    assert status["reportedAttempt"] == 2 and status["podName"] == pod
    assert (await PoolQueue(admin, pool_namespace, "fast").depth()) == (0, 0)  # nothing left to run twice


async def test_cancel_and_timeout_stop_one_run_and_the_worker_serves_on(
    pool_broker: KubernetesBroker,
    cluster: Any,
    pool_namespace: str,
    admin: RedisStore,
) -> None:
    from tests.integration import pool_tasks as t

    long = await t.nap.kiq(60)
    worker = await claimed_by(admin, pool_namespace, long.task_id)

    def running() -> dict[str, Any] | None:
        status = taskrun(cluster, pool_namespace, long.task_id).get("status", {})
        return status if status.get("phase") == "Running" else None

    status = cluster.wait_for("the long run recorded as Running on its worker", running, timeout=10)
    assert status["podName"] == worker and status["attempts"] == 1 and "jobName" not in status
    started = time.monotonic()
    await long.cancel()
    with pytest.raises(TaskCancelledError):
        await long.wait_result(timeout=WAIT)
    assert time.monotonic() - started < 15
    timed = await t.nap.kicker().with_labels(timeout=1, retry_on_error=False).kiq(30)
    record = await timed.wait_result(timeout=WAIT)
    assert record.is_err and isinstance(record.error, TaskTimeoutError)
    assert taskrun(cluster, pool_namespace, timed.task_id)["status"]["phase"] == "Failed"

    def stopped() -> bool | None:
        logs = cluster.kubectl("logs", "-n", pool_namespace, worker, check=False).stdout
        return f"Stopped attempt 1 of TaskRun {long.task_id}" in logs or None

    cluster.wait_for("the worker's note that it stopped the cancelled run", stopped, timeout=10)
    assert worker in worker_pods(cluster, pool_namespace)  # no restart: the same worker process serves on
    assert await (await t.add.kiq(2, 3)).wait_result(timeout=WAIT) == 5


async def test_a_run_created_but_never_enqueued_is_enqueued_by_the_operator(
    pool_broker: KubernetesBroker,
    cluster: Any,
    pool_namespace: str,
) -> None:
    from tests.integration import pool_tasks as t

    message = t.add.kicker().with_task_id(f"orphan-{os.getpid()}-{int(time.time())}")._prepare_message(4, 5)
    body = pool_broker.taskrun_body(message)
    await pool_broker.taskruns.create(pool_namespace, body)  # as a client that died right after the create
    pool_broker.watch.track(body["metadata"]["name"])
    started = time.monotonic()
    finished = await pool_broker.watch.wait(body["metadata"]["name"], WAIT)
    assert finished.status.is_succeeded() and finished.status.result["return_value"] == 9
    assert time.monotonic() - started >= 4  # the operator's grace, then its enqueue


def elastic_replicas(cluster: Any, namespace: str) -> int:
    """The elastic pool's Deployment's replicas, as the operator last set them."""
    return int(cluster.get("deployment", "podiq-pool-elastic", "-n", namespace)["spec"]["replicas"])


async def test_a_pool_scales_from_zero_to_its_backlog_and_back(
    pool_broker: KubernetesBroker,
    cluster: Any,
    pool_namespace: str,
) -> None:
    from tests.integration import pool_tasks as t

    cluster.wait_for(
        "the elastic pool's Deployment at zero",
        lambda: elastic_replicas(cluster, pool_namespace) == 0 or None,
        timeout=WAIT,
    )
    assert worker_pods(cluster, pool_namespace, "elastic") == []
    # The pool is chosen per call; the first runs wait for a worker to start, as a Job would.
    handles = [await t.nap.kicker().with_labels(pool="elastic").kiq(3) for _ in range(3)]
    cluster.wait_for(
        "two workers for three runs at one run each",
        lambda: elastic_replicas(cluster, pool_namespace) == 2 or None,
        timeout=WAIT,
    )
    pods = {(await h.wait_result(timeout=WAIT)).return_value for h in handles}
    assert len(pods) == 2 and all(p.startswith("podiq-pool-elastic-") for p in pods)
    status = cluster.get("taskpool", "elastic", "-n", pool_namespace)["status"]
    assert status["deploymentName"] == "podiq-pool-elastic"
    cluster.wait_for(
        "the pool back at zero once idle", lambda: elastic_replicas(cluster, pool_namespace) == 0 or None, timeout=WAIT
    )
    cluster.wait_for(
        "its workers gone", lambda: worker_pods(cluster, pool_namespace, "elastic") == [] or None, timeout=WAIT
    )


async def test_a_shrinking_pool_keeps_its_busy_worker(
    pool_broker: KubernetesBroker,
    cluster: Any,
    pool_namespace: str,
) -> None:
    from tests.integration import pool_tasks as t

    cluster.wait_for(
        "the elastic pool's Deployment at zero",
        lambda: elastic_replicas(cluster, pool_namespace) == 0 or None,
        timeout=WAIT,
    )
    long = await t.nap.kicker().with_labels(pool="elastic").kiq(40)
    short = await t.nap.kicker().with_labels(pool="elastic").kiq(1)
    cluster.wait_for(
        "two workers, one run each", lambda: elastic_replicas(cluster, pool_namespace) == 2 or None, timeout=WAIT
    )
    assert (await short.wait_result(timeout=WAIT)).return_value
    # The need falls to one worker; the pool shrinks after 10 s, and the ReplicaSet must stop the idle one.
    cluster.wait_for(
        "the pool down to one worker", lambda: elastic_replicas(cluster, pool_namespace) == 1 or None, timeout=WAIT
    )
    busy = cluster.wait_for(
        "the long run recorded on its worker",
        lambda: taskrun(cluster, pool_namespace, long.task_id)["status"].get("podName"),
        timeout=WAIT,
    )
    pod = cluster.get("pod", busy, "-n", pool_namespace)
    assert pod["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] == "1"
    cluster.wait_for(
        "the idle worker gone", lambda: worker_pods(cluster, pool_namespace, "elastic") == [busy] or None, timeout=WAIT
    )
    assert (await long.wait_result(timeout=WAIT)).return_value == busy
    status = taskrun(cluster, pool_namespace, long.task_id)["status"]
    assert (status["phase"], status["attempts"]) == ("Succeeded", 1)  # never cut short and retried


def test_an_invalid_pool_says_why_in_its_status_and_an_event(
    cluster: Any, pool_operator: OperatorProcess, pool_namespace: str
) -> None:
    from tests.integration.conftest import pool_manifest

    cluster.apply(pool_manifest("upside-down", minReplicas=3, maxReplicas=1), "-n", pool_namespace)

    def ready() -> dict[str, Any] | None:
        conditions = cluster.get("taskpool", "upside-down", "-n", pool_namespace).get("status", {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "Ready"), None)

    condition = cluster.wait_for("the pool's Ready condition", ready, timeout=WAIT)
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert "minReplicas (3) is above maxReplicas (1)" in condition["message"]

    def event() -> dict[str, Any] | None:
        events = cluster.get(
            "events",
            "-n",
            pool_namespace,
            "--field-selector",
            "involvedObject.kind=TaskPool,involvedObject.name=upside-down",
        )["items"]
        return events[0] if events else None

    found = cluster.wait_for("the Event on the pool", event, timeout=WAIT)
    assert (found["type"], found["reason"]) == ("Warning", "InvalidSpec") and "maxReplicas" in found["message"]
    assert cluster.kubectl("get", "deployment", "podiq-pool-upside-down", "-n", pool_namespace, check=False).returncode
    # Fixed, it is kept, and says so.
    cluster.apply(pool_manifest("upside-down", minReplicas=0, maxReplicas=1), "-n", pool_namespace)
    cluster.wait_for("the pool Ready", lambda: (ready() or {}).get("status") == "True" or None, timeout=WAIT)
    cluster.kubectl("delete", "taskpool", "upside-down", "-n", pool_namespace)


def test_with_keda_scaling_the_operator_leaves_replicas_alone(
    cluster: Any, podiq_crd: Any, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.integration.conftest import namespace_with_chart, pool_manifest

    namespace = namespace_with_chart(podiq_crd, "podiq-keda")
    operator = OperatorProcess(
        cluster,
        namespace,
        tmp_path_factory.mktemp("operator-keda"),
        env={"PODIQ_REDIS_URL": redis_server.url, "PODIQ_POOL_SCALING": "keda"},
    )
    operator.start()
    try:
        cluster.apply(pool_manifest("scaled", minReplicas=0, maxReplicas=2, concurrency=1), "-n", namespace)

        def replicas() -> int | None:
            got = cluster.kubectl("get", "deployment", "podiq-pool-scaled", "-n", namespace, "-o", "json", check=False)
            return None if got.returncode else int(json.loads(got.stdout)["spec"]["replicas"])

        assert cluster.wait_for("the pool's Deployment", lambda: replicas() is not None or None, timeout=WAIT)
        assert replicas() == 0
        # As KEDA would: one worker, with nothing to do. The operator would shrink it after 10 s.
        cluster.kubectl("scale", "deployment", "podiq-pool-scaled", "-n", namespace, "--replicas=1")
        time.sleep(16)
        assert replicas() == 1
        status = cluster.get("taskpool", "scaled", "-n", namespace)["status"]
        assert status["replicas"] == 1 and status["conditions"][0]["status"] == "True"
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
