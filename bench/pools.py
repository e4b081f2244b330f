"""Warm pools against taskiq-redis, side by side on one Redis; prints figures, asserts nothing.

    python bench/pools.py [--latency 200] [--batch 2000]

A redis-server on 127.0.0.1 and the local control plane (pods are host processes). podiq: the
operator with Redis and a TaskPool of 2 workers; each no-op task is a TaskRun dispatched through
the pool's stream. taskiq-redis: RedisStreamBroker and RedisAsyncResultBackend on the same Redis
with one `taskiq worker` process, waited on at taskiq's default check_interval (0.2 s) and at
0.01 s. For each: kiq-to-result p50/p99 one task at a time, and the throughput of `--batch`
tasks sent at once (at most 200 sends in flight) and awaited, with the rate of the sending alone. For podiq, the TaskRun writes the API server counted per task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.kubernetes import local_cluster  # noqa: E402 - imported once the repository is on sys.path
from tests.cluster.cluster import Cluster  # noqa: E402 - imported once the repository is on sys.path
from tests.redisserver import RedisServer, running_redis  # noqa: E402 - imported once the repository is on sys.path

WORKERS = 2
CONCURRENCY = 64
IN_FLIGHT = 200
_WRITES = re.compile(r"^apiserver_request_total\{([^}]*)\} (\d+)", re.M)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def taskrun_writes(cluster: Cluster) -> int:
    """Create, patch and update requests on TaskRuns (and their status) the API server served."""
    metrics = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    total = 0
    for labels, count in _WRITES.findall(metrics):
        if 'resource="taskruns"' in labels and re.search(r'verb="(POST|CREATE|PATCH|UPDATE|APPLY)"', labels):
            total += int(count)
    return total


async def timed_runs(kiq: Any, wait: Any, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await wait(await kiq())
        times.append(time.perf_counter() - started)
    return times


async def batch(kiq: Any, wait: Any, count: int) -> tuple[float, float]:
    """Tasks per second for ``count`` sent at once, at most :data:`IN_FLIGHT` sends pending at a
    time (as a client would; more only queue for connections and time out on a busy machine)."""
    sending = asyncio.Semaphore(IN_FLIGHT)

    async def send() -> Any:
        async with sending:
            return await kiq()

    started = time.perf_counter()
    handles = await asyncio.gather(*(send() for _ in range(count)))
    sent = time.perf_counter()
    await asyncio.gather(*(wait(h) for h in handles))
    return count / (time.perf_counter() - started), count / (sent - started)


async def measure_podiq(
    cluster: Cluster, server: RedisServer, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    from podiq.kubernetes.broker import KubernetesBroker
    from tests.integration import pool_tasks as t
    from tests.integration.conftest import OperatorProcess, namespace_with_chart

    for crd in ("taskrun", "taskpool"):
        cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds" / f"{crd}.yaml"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/taskruns.podiq.io", "crd/taskpools.podiq.io"
    )
    namespace = namespace_with_chart(cluster, "bench-pool")
    operator = OperatorProcess(
        cluster, namespace, log_dir, env={"PODIQ_REDIS_URL": server.url, "PODIQ_EVENTS": "false"}
    )
    operator.start()
    pool = {
        "apiVersion": "podiq.io/v1alpha1",
        "kind": "TaskPool",
        "metadata": {"name": t.POOL},
        "spec": {
            "minReplicas": WORKERS,
            "maxReplicas": WORKERS,
            "concurrency": CONCURRENCY,
            "env": [{"name": "PYTHONPATH", "value": str(REPO_ROOT)}],
            "imports": ["tests.integration.pool_tasks"],
        },
    }
    cluster.apply(json.dumps(pool), "-n", namespace)
    broker = KubernetesBroker(namespace, kubeconfig=str(cluster.kubeconfig), redis_url=server.url)

    def running_workers() -> bool | None:
        pods = cluster.get("pods", "-n", namespace, "-l", f"podiq.io/pool={t.POOL}")["items"]
        return sum(p.get("status", {}).get("phase") == "Running" for p in pods) == WORKERS or None

    try:
        cluster.wait_for("the pool's workers", running_workers, timeout=120)
        async with broker:

            async def kiq() -> Any:
                return await t.noop.kicker().with_broker(broker).kiq()

            async def wait(handle: Any) -> None:
                record = await handle.wait_result(timeout=300)
                if record.is_err:
                    raise RuntimeError(f"a pool run failed: {record.error}")

            await timed_runs(kiq, wait, 5)  # warm the workers and the connections
            latency = await timed_runs(kiq, wait, args.latency)
            before = taskrun_writes(cluster)
            throughput, sending = await batch(kiq, wait, args.batch)
            writes = (taskrun_writes(cluster) - before) / args.batch
    finally:
        operator.stop()
    return {"latency": latency, "throughput": throughput, "sending": sending, "writes": writes}


async def measure_taskiq(server: RedisServer, args: argparse.Namespace, log_dir: Path) -> dict[float, dict[str, Any]]:
    os.environ["BENCH_TASKIQ_REDIS_URL"] = server.url
    from bench import taskiq_tasks

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = open(log_dir / "taskiq-worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskiq", "worker", "--workers", "1", "bench.taskiq_tasks:broker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    figures: dict[float, dict[str, Any]] = {}
    try:
        await taskiq_tasks.broker.startup()
        for interval in (0.2, 0.01):

            async def wait(handle: Any, interval: float = interval) -> None:
                record = await handle.wait_result(check_interval=interval, timeout=300)
                if record.is_err:
                    raise RuntimeError(f"a taskiq run failed: {record.error}")

            await timed_runs(taskiq_tasks.noop.kiq, wait, 5)
            latency = await timed_runs(taskiq_tasks.noop.kiq, wait, args.latency)
            throughput, sending = await batch(taskiq_tasks.noop.kiq, wait, args.batch)
            figures[interval] = {"latency": latency, "throughput": throughput, "sending": sending}
        await taskiq_tasks.broker.shutdown()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return figures


def report(podiq: dict[str, Any], taskiq: dict[float, dict[str, Any]], args: argparse.Namespace) -> None:
    table = Table(
        title=f"no-op tasks: kiq to result one at a time ({args.latency} runs), and {args.batch} sent at once"
    )
    for column in ("system", "p50 ms", "p99 ms", "tasks/s", "sent/s", "API writes per task"):
        table.add_column(column, justify="right" if column != "system" else "left")

    def row(name: str, figures: dict[str, Any], writes: str) -> None:
        lat = figures["latency"]
        table.add_row(
            name,
            f"{statistics.median(lat) * 1e3:.1f}",
            f"{percentile(lat, 0.99) * 1e3:.1f}",
            f"{figures['throughput']:.0f}",
            f"{figures['sending']:.0f}",
            writes,
        )

    row(f"podiq pool ({WORKERS} workers)", podiq, f"{podiq['writes']:.2f}")
    for interval, figures in taskiq.items():
        row(f"taskiq-redis, check_interval={interval:g}", figures, "-")
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=int, default=200, help="runs timed one at a time")
    parser.add_argument("--batch", type=int, default=2000, help="runs sent at once")
    args = parser.parse_args()

    with local_cluster() as cluster, running_redis() as server:
        podiq = asyncio.run(measure_podiq(cluster, server, args, server.directory))
        taskiq = asyncio.run(measure_taskiq(server, args, server.directory))
        report(podiq, taskiq, args)


if __name__ == "__main__":
    main()
