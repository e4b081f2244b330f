"""Large values through the chart's own Redis on kind: `helm install` with redis.enabled=true,
the Redis image built from Debian's package (tests/kind/redis_image.py), the client on the
host reaching it through `kubectl port-forward` to its Service, as a user on kind does.

The chart keeps its default Redis address: the operator and task pods reach Redis at its
Service's DNS name, through the cluster's CoreDNS as on any kind cluster. These tests run with
PODIQ_KIND=1, like tests/e2e/test_kind.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from podiq.exceptions import StoreAccessDeniedError
from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.storage import RedisStore, StoredValue, StoreSettings
from tests.e2e import kind_tasks as kt
from tests.e2e import scenario
from tests.e2e.test_kind import helm_sets, outcome
from tests.kind import redis_image
from tests.kind.cluster import KindCluster

pytestmark = [pytest.mark.e2e, pytest.mark.kind, pytest.mark.timeout(900)]

# Namespaces of their own: test_kind.py's are deleted without waiting, and may still be going.
OPERATOR_NAMESPACE = "podiq-redis-system"
NAMESPACE_A = "podiq-redis-a"
NAMESPACE_B = "podiq-redis-b"
NAMESPACES = (NAMESPACE_A, NAMESPACE_B)
REDIS_SERVICE = "podiq-redis"  # the chart's <fullname>-redis, for the release podiq
REDIS_HOST = f"{REDIS_SERVICE}.{OPERATOR_NAMESPACE}.svc"  # the chart's default address of it
PORT_FORWARD_START = 30.0  # seconds for kubectl port-forward to say where it listens
WAIT = 240.0  # seconds a task may take, its pod start on the node included


def redis_helm_sets() -> list[str]:
    return [
        *helm_sets(),
        "redis.enabled=true",
        f"redis.image.repository={redis_image.REPOSITORY}",
        f"redis.image.tag={redis_image.TAG}",
    ]


@contextmanager
def port_forward(cluster: KindCluster, namespace: str, service: str, port: int) -> Iterator[int]:
    """`kubectl port-forward svc/<service> :<port>` on 127.0.0.1; yields the local port it chose,
    and stops it at the end (SIGTERM, then SIGKILL after 10 s)."""
    proc = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, f"svc/{service}", f":{port}", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cluster.env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        # "Forwarding from 127.0.0.1:41235 -> 6379", within the time limit.
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + PORT_FORWARD_START
        line = ""
        while not line.startswith("Forwarding from 127.0.0.1:"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None or not selector.select(timeout=left):
                proc.kill()
                raise AssertionError(
                    f"kubectl port-forward to svc/{service} did not start within {PORT_FORWARD_START:.0f} s: "
                    f"{line!r} {proc.stderr.read()}"
                )
            line = proc.stdout.readline()
        local = int(line.split("127.0.0.1:", 1)[1].split()[0])
        # kubectl prints a line per connection: drained, so that it never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield local
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def on_host(url: str, port: int) -> str:
    """A Redis URL as seen from the host: the same user and password, through the forwarded port."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


def secret_value(cluster: KindCluster, namespace: str, name: str, key: str) -> str:
    secret = json.loads(cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "json").stdout)
    return base64.b64decode(secret["data"][key]).decode()


class Installed:
    """The chart with its Redis, and the admin URL of that Redis through the forwarded port."""

    def __init__(self, cluster: KindCluster, local_port: int) -> None:
        self.cluster = cluster
        self.local_port = local_port
        password = secret_value(cluster, OPERATOR_NAMESPACE, REDIS_SERVICE, "password")
        self.admin_url = f"redis://:{password}@127.0.0.1:{local_port}/0"

    def broker(self, namespace: str, redis_url: str | None = None) -> KubernetesBroker:
        return KubernetesBroker(
            namespace, kubeconfig=str(self.cluster.kubeconfig), redis_url=redis_url or self.admin_url
        )

    def taskrun(self, namespace: str, name: str) -> dict[str, Any]:
        done = self.cluster.kubectl("get", "taskrun", name, "-n", namespace, "-o", "json")
        return json.loads(done.stdout)  # type: ignore[no-any-return]  # a TaskRun as JSON


@pytest.fixture(scope="module")
def installed(kind_cluster: KindCluster) -> Iterator[Installed]:
    scenario.install(
        kind_cluster, *redis_helm_sets(), operator_namespace=OPERATOR_NAMESPACE, task_namespaces=NAMESPACES
    )
    try:
        with port_forward(kind_cluster, OPERATOR_NAMESPACE, REDIS_SERVICE, 6379) as local_port:
            yield Installed(kind_cluster, local_port)
    finally:
        scenario.uninstall(kind_cluster, operator_namespace=OPERATOR_NAMESPACE, task_namespaces=NAMESPACES)


async def _send(broker: KubernetesBroker, task: Any, *args: Any) -> Any:
    async with broker:
        sent = await task.kicker().with_broker(broker).kiq(*args)
        return await sent.wait_result(timeout=WAIT, with_logs=True)


def send(broker: KubernetesBroker, task: Any, *args: Any) -> Any:
    """Sends one task through ``broker`` and waits: the finished TaskiqResult, its error not raised."""
    return asyncio.run(_send(broker, task, *args))


def test_the_charts_redis_runs_debians_package_as_uid_999_in_a_restricted_namespace(installed: Installed) -> None:
    pod = scenario.operator_pod(installed.cluster, OPERATOR_NAMESPACE, component="redis")
    assert pod["status"]["phase"] == "Running"
    container = pod["spec"]["containers"][0]
    assert container["image"] == redis_image.IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 999
    # The operator is given the Service's DNS name, no address: CoreDNS resolves it in the pod.
    operator = scenario.operator_pod(installed.cluster, OPERATOR_NAMESPACE)
    env = {var["name"]: var.get("value", "") for var in operator["spec"]["containers"][0]["env"]}
    assert urlsplit(env["PODIQ_REDIS_URL"]).hostname == REDIS_HOST, env["PODIQ_REDIS_URL"]

    async def server_info() -> dict[str, Any]:
        async with RedisStore(StoreSettings(url=installed.admin_url)) as store:
            return await store.redis.info("server")

    info = asyncio.run(server_info())
    # bookworm's package, 7.0.15, not a pulled image's Redis.
    assert str(info["redis_version"]) == "7.0.15", info


def test_a_3_mb_argument_and_a_20_mb_result_round_trip_through_the_charts_redis(installed: Installed) -> None:
    text = "é" * 1_500_000  # 3 MB as UTF-8 JSON: over the 64 KiB inline limit, and over etcd's 1.5 MiB
    result = send(installed.broker(NAMESPACE_A), kt.digest_and_grow, text, 20_000_000)
    assert not result.is_err, result.error
    prefix = f"1500000:{hashlib.sha256(text.encode()).hexdigest()}:"
    assert result.return_value.startswith(prefix)
    assert len(result.return_value) == len(prefix) + 20_000_000 and result.return_value.endswith("x" * 100)

    run = installed.taskrun(NAMESPACE_A, result.task_id)
    assert outcome(run)[:2] == ("Succeeded", "Succeeded")
    spec, status = run["spec"], run["status"]
    assert spec["args"] == [] and spec["argsRef"]["size"] > 3_000_000
    assert spec["argsRef"]["key"] == f"podiq:{NAMESPACE_A}:{result.task_id}:args"
    assert "result" not in status and status["resultRef"]["size"] > 20_000_000
    assert status["resultRef"]["key"] == f"podiq:{NAMESPACE_A}:{result.task_id}:result:1"

    async def stored() -> bytes:
        async with RedisStore(StoreSettings(url=installed.admin_url)) as store:
            return await store.get(StoredValue.model_validate(status["resultRef"]))

    # The result record is in the chart's Redis, checked against its reference (size and sha256).
    record = json.loads(asyncio.run(stored()))
    assert (record["is_err"], record["return_value"]) == (False, result.return_value)


def test_logs_are_read_from_the_charts_redis_after_the_pod_and_job_are_deleted(installed: Installed) -> None:
    broker = installed.broker(NAMESPACE_A)
    result = send(broker, kt.chatty, 3)
    assert result.return_value == 3
    run = installed.taskrun(NAMESPACE_A, result.task_id)
    assert run["status"]["logRef"]["key"] == f"podiq:{NAMESPACE_A}:{result.task_id}:log:1"
    cluster = installed.cluster
    selector = f"podiq.io/taskrun={result.task_id}"
    cluster.kubectl(
        "delete", "jobs", "-n", NAMESPACE_A, "-l", selector, "--cascade=foreground", "--wait=true", timeout=120
    )
    deadline = time.monotonic() + 60
    while json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE_A, "-l", selector, "-o", "json").stdout)["items"]:
        assert time.monotonic() < deadline, f"the pod of {result.task_id} was not deleted within 60 s"
        time.sleep(1)
    assert (
        json.loads(cluster.kubectl("get", "jobs", "-n", NAMESPACE_A, "-l", selector, "-o", "json").stdout)["items"]
        == []
    )

    async def logs_now() -> Any:
        async with broker:
            return await broker.result_backend.get_result(result.task_id, with_logs=True)

    record = asyncio.run(logs_now())
    assert [f"chatty line {n}" for n in range(3)] == [ln for ln in record.log.splitlines() if ln.startswith("chatty")]

    printed = subprocess.run(
        [str(Path(sys.executable).parent / "podiq"), "logs", result.task_id, "-n", NAMESPACE_A],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), PODIQ_REDIS_URL=installed.admin_url),
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert "chatty line 2" in printed.stdout


def test_a_task_in_another_namespace_is_refused_the_first_namespaces_key(installed: Installed) -> None:
    # A value of namespace A's, then a task of A that reads it with A's own Redis user.
    mine = send(installed.broker(NAMESPACE_A), kt.digest_and_grow, "a" * 100_000, 10)
    ref = installed.taskrun(NAMESPACE_A, mine.task_id)["spec"]["argsRef"]
    own = send(installed.broker(NAMESPACE_A), kt.read_stored, ref["key"], ref["size"], ref["sha256"])
    assert not own.is_err, own.error
    assert hashlib.sha256(own.return_value.encode()).hexdigest() == ref["sha256"]

    # The same key, read by a task of namespace B: Redis refuses B's user.
    refused = send(installed.broker(NAMESPACE_B), kt.read_stored, ref["key"], ref["size"], ref["sha256"])
    assert refused.is_err and isinstance(refused.error, StoreAccessDeniedError), refused.error
    assert f"refused reading {ref['key']}" in str(refused.error)
    phase, reason, message = outcome(installed.taskrun(NAMESPACE_B, refused.task_id))
    assert (phase, reason) == ("Failed", "Failed"), message
    assert f"refused reading {ref['key']}" in message, message

    # The pods' users are their namespaces' own (from the Secret the operator wrote), not the admin.
    users = {ns: urlsplit(secret_value(installed.cluster, ns, "podiq-redis", "url")) for ns in NAMESPACES}
    assert {ns: url.username for ns, url in users.items()} == {ns: f"podiq-{ns}" for ns in NAMESPACES}
    assert {url.hostname for url in users.values()} == {REDIS_HOST}

    # From the host, B's user is refused too, and A's value is untouched.
    async def read_as(url: str) -> bytes:
        async with RedisStore(StoreSettings(url=url)) as store:
            return await store.get(StoredValue.model_validate(ref))

    b_url = on_host(secret_value(installed.cluster, NAMESPACE_B, "podiq-redis", "url"), installed.local_port)
    with pytest.raises(StoreAccessDeniedError, match="refused reading"):
        asyncio.run(read_as(b_url))
    a_url = on_host(secret_value(installed.cluster, NAMESPACE_A, "podiq-redis", "url"), installed.local_port)
    assert len(asyncio.run(read_as(a_url))) == ref["size"]
