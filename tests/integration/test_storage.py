"""Large values through Redis on the local control plane: a real redis-server on 127.0.0.1
(task pods are host processes, so they reach it), the operator with the admin URL, task
pods with their namespace's own ACL user from the Secret the operator provisions."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from podiq import SendTaskError, gather
from podiq.exceptions import StoreAccessDeniedError, StoreUnavailableError
from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.storage import RedisStore, StoreSettings, run_keys
from tests.integration.conftest import OperatorProcess, chart_namespace, namespace_with_chart, operator_with_redis
from tests.redisserver import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT = 90


def taskrun(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "taskrun", name, "-n", namespace, "-o", "json").stdout)


@pytest.fixture(scope="module")
def redis_namespace(podiq_crd: Any) -> Iterator[str]:
    with chart_namespace(podiq_crd, "podiq-redis", "PODIQ_TEST_REDIS_NAMESPACE") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def redis_operator(
    cluster: Any,
    redis_namespace: str,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    operator = operator_with_redis(cluster, redis_namespace, redis_server, tmp_path_factory.mktemp("operator-redis"))
    yield operator
    operator.stop()


@pytest.fixture
async def redis_broker(
    cluster: Any,
    redis_operator: OperatorProcess,
    redis_namespace: str,
    redis_server: RedisServer,
) -> AsyncIterator[KubernetesBroker]:
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    from tests.integration import redis_tasks

    broker = redis_tasks.broker
    broker.namespace, broker.kubeconfig = redis_namespace, str(cluster.kubeconfig)
    broker.store_settings = StoreSettings(url=redis_server.url)
    async with broker:
        yield broker


def podiq_cli(cluster: Any, redis_server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.env, "PODIQ_REDIS_URL": redis_server.url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "podiq.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_3_mb_argument_and_a_20_mb_result_round_trip(
    redis_broker: KubernetesBroker,
    cluster: Any,
    redis_namespace: str,
    redis_server: RedisServer,
) -> None:
    from tests.integration import redis_tasks as t

    text = "é" * 1_500_000  # 3 MB as UTF-8 JSON
    measured = await t.measure.kiq(text, factor=2)
    assert await measured.wait_result(timeout=WAIT) == 3_000_000
    spec = taskrun(cluster, redis_namespace, measured.task_id)["spec"]
    assert spec["args"] == [] and spec["argsRef"]["size"] > 3_000_000
    assert spec["argsRef"]["key"] == f"podiq:{redis_namespace}:{measured.task_id}:args"

    big = await t.make_text.kicker().kiq(20_000_000)
    record = await big.wait_result(timeout=WAIT)
    assert not record.is_err and len(record.return_value) == 20_000_000 and set(record.return_value) == {"x"}
    status = taskrun(cluster, redis_namespace, big.task_id)["status"]
    assert "result" not in status and status["resultRef"]["size"] > 20_000_000 and status["phase"] == "Succeeded"
    assert len((await big.get_result()).return_value) == 20_000_000

    small, large = await gather(t.make_text.kiq(10), t.make_text.kiq(300_000), timeout=WAIT)
    assert small.return_value == "x" * 10 and large.return_value == "x" * 300_000

    shown = podiq_cli(cluster, redis_server, "get", big.task_id, "-n", redis_namespace)
    assert shown.returncode == 0, shown.stderr
    assert "Succeeded" in shown.stdout and "'xxxxxxxx" in shown.stdout and "characters)" in shown.stdout


async def test_logs_outlive_the_pod(
    redis_broker: KubernetesBroker,
    cluster: Any,
    redis_namespace: str,
    redis_server: RedisServer,
) -> None:
    from tests.integration import redis_tasks as t

    handle = await t.shout.kiq("hello")
    assert await handle.wait_result(timeout=WAIT) == "HELLO"
    assert "logRef" in taskrun(cluster, redis_namespace, handle.task_id)["status"]
    selector = f"podiq.io/taskrun={handle.task_id}"
    cluster.kubectl("delete", "jobs", "-n", redis_namespace, "-l", selector, "--cascade=foreground", "--wait=true")

    def pods_gone() -> bool | None:
        pods = json.loads(cluster.kubectl("get", "pods", "-n", redis_namespace, "-l", selector, "-o", "json").stdout)
        return True if not pods["items"] else None

    cluster.wait_for("the task's pod to be deleted", pods_gone, timeout=60)
    record = await redis_broker.result_backend.get_result(handle.task_id, with_logs=True)
    assert record.log is not None and "line 0: hello" in record.log and "line 2: hello" in record.log

    logs = podiq_cli(cluster, redis_server, "logs", handle.task_id, "-n", redis_namespace)
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert "line 2: hello" in logs.stdout


async def test_keys_are_gone_with_the_taskrun_after_its_ttl(
    redis_broker: KubernetesBroker,
    cluster: Any,
    redis_namespace: str,
    admin: RedisStore,
) -> None:
    from tests.integration import redis_tasks as t

    handle = await t.measure.kicker().with_labels(ttl=1).kiq("y" * 200_000)
    assert (await handle.wait_result(timeout=WAIT)).return_value == 200_000
    keys = run_keys(redis_namespace, handle.task_id, 1)
    assert await admin.exists(keys[0])  # the arguments, and the output's tail
    # The runtime shortens the arguments' TTL right after it reports, so the waiter may be first.
    for _ in range(100):
        if 0 < await admin.redis.ttl(keys[0]) <= 61:
            break
        await asyncio.sleep(0.1)
    assert 0 < await admin.redis.ttl(keys[0]) <= 61

    def deleted() -> bool | None:
        found = cluster.kubectl("get", "taskrun", handle.task_id, "-n", redis_namespace, check=False)
        return True if found.returncode != 0 and "NotFound" in found.stderr else None

    cluster.wait_for("the TaskRun to be deleted after its TTL", deleted, timeout=60)
    for _ in range(50):
        if not [key for key in keys if await admin.exists(key)]:
            break
        await asyncio.sleep(0.1)
    assert [key for key in keys if await admin.exists(key)] == []


async def test_a_namespace_cannot_read_another_namespaces_values(
    redis_broker: KubernetesBroker,
    cluster: Any,
    redis_namespace: str,
    redis_server: RedisServer,
    admin: RedisStore,
) -> None:
    from tests.integration import redis_tasks as t

    mine = await admin.put(f"podiq:{redis_namespace}:probe:args", b"mine", ttl=600)
    theirs = await admin.put("podiq:someone-else:run:result:1", b"theirs", ttl=600)
    own = await t.read_reference.kiq(mine.key, mine.size, mine.sha256)
    assert await own.wait_result(timeout=WAIT) == "mine"
    other = await t.read_reference.kiq(theirs.key, theirs.size, theirs.sha256)
    with pytest.raises(StoreAccessDeniedError, match="refused reading podiq:someone-else:run:result:1"):
        await other.wait_result(timeout=WAIT)
    # The pods' credentials are the namespace's user from the operator's Secret, not the admin's.
    secret = json.loads(cluster.kubectl("get", "secret", "podiq-redis", "-n", redis_namespace, "-o", "json").stdout)
    url = urlsplit(base64.b64decode(secret["data"]["url"]).decode())
    assert url.username == f"podiq-{redis_namespace}" and url.password != redis_server.password
    assert await admin.get(theirs) == b"theirs"


async def test_redis_killed_mid_run_ends_the_attempt_with_a_clear_error(
    cluster: Any,
    podiq_crd: Any,
    fresh_redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.integration import redis_tasks as t

    namespace = namespace_with_chart(podiq_crd, "podiq-rkill")
    operator = operator_with_redis(cluster, namespace, fresh_redis_server, tmp_path_factory.mktemp("operator-rkill"))
    broker = KubernetesBroker(
        namespace, kubeconfig=str(cluster.kubeconfig), redis_url=fresh_redis_server.url, env={"PYTHONPATH": t.REPO_ROOT}
    )
    try:
        async with broker:
            handle = await t.make_text.kicker().with_broker(broker).kiq(500_000, delay=8)

            def pod_started() -> dict[str, Any] | None:
                status: dict[str, Any] = taskrun(cluster, namespace, handle.task_id).get("status", {})
                return status if status.get("podName") else None

            status = cluster.wait_for("the attempt's pod to start", pod_started, timeout=30)
            assert status["phase"] == "Running"
            fresh_redis_server.kill()
            started = time.monotonic()
            record = await handle.wait_result(timeout=WAIT)  # a kicker's handle returns the container
            assert time.monotonic() - started < 30
            assert record.is_err and isinstance(record.error, StoreUnavailableError)
            assert "cannot be reached" in str(record.error)
            status = taskrun(cluster, namespace, handle.task_id)["status"]
            assert status["phase"] == "Failed" and "could not be stored in Redis" in status["conditions"][0]["message"]

            started = time.monotonic()
            with pytest.raises(SendTaskError, match="cannot be reached"):
                await t.measure.kicker().with_broker(broker).kiq("z" * 200_000)
            assert time.monotonic() - started < 15
    finally:
        operator.stop()
        podiq_crd.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


async def test_without_redis_a_3_mb_argument_is_refused_at_kiq_by_name(k8s_broker: Any) -> None:
    from podiq.exceptions import ArgumentsTooLargeError
    from tests.integration import k8s_tasks as t

    with pytest.raises(
        ArgumentsTooLargeError, match=r"3\.0 MB.*over the 1\.0 MB.*the largest is 'data', 3\.0 MB.*redis_url="
    ):
        await t.context_aware_task.kiq("d" * 3_000_000)
