"""Large values through Redis on the local control plane; prints figures, asserts nothing.

    python bench/storage.py [--rounds 5] [--large 10000000] [--inline 100000]

A redis-server on 127.0.0.1, the operator with its admin URL, and one task that returns its
argument. Each round runs, one at a time and pods and all: a no-op task (the floor: a pod is
a Python process), the task with an `--inline`-byte argument (kept inline in the TaskRun,
and its result too), and the task with a `--large`-byte argument (the argument and the
result through Redis). Medians of kiq-to-result seconds are printed, and the Redis memory
one large run leaves behind (its argument, result and output tail) until its TTL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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

#: Inline up to this many bytes of JSON, so that the `--inline` run stays in the TaskRun.
INLINE_LIMIT = 200 * 1024


async def measure(cluster: Cluster, server: RedisServer, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from podiq.kubernetes.broker import KubernetesBroker
    from podiq.kubernetes.storage import RedisStore, StoreSettings, run_keys
    from tests.integration import redis_tasks as t
    from tests.integration.conftest import OperatorProcess, namespace_with_chart

    cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds" / "taskrun.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/taskruns.podiq.io")
    namespace = namespace_with_chart(cluster, "bench-redis")
    limits = {"PODIQ_REDIS_ARGS_INLINE_LIMIT": str(INLINE_LIMIT), "PODIQ_REDIS_RESULT_INLINE_LIMIT": str(INLINE_LIMIT)}
    operator = OperatorProcess(cluster, namespace, log_dir, env={"PODIQ_REDIS_URL": server.url, **limits})
    operator.start()
    settings = StoreSettings.from_env(limits, url=server.url)
    broker = KubernetesBroker(
        namespace, kubeconfig=str(cluster.kubeconfig), redis_url=server.url, env={"PYTHONPATH": str(REPO_ROOT)}
    )
    broker.store_settings = settings
    times: dict[str, list[float]] = {"no-op": [], "inline": [], "redis": []}
    memory: list[int] = []
    try:
        async with broker, RedisStore(settings) as admin:

            async def run(key: str, text: str) -> str:
                """One run of the echo task, timed; returns its TaskRun's name."""
                started = time.perf_counter()
                handle = await t.echo.kicker().with_broker(broker).kiq(text)
                record = await handle.wait_result(timeout=300)
                times[key].append(time.perf_counter() - started)
                if record.is_err or record.return_value != text:
                    raise RuntimeError(f"the {key} run failed: {record.error}")
                return handle.task_id

            await run("no-op", "")  # a first pod warms the node's caches
            times["no-op"].clear()
            for _ in range(args.rounds):
                await run("no-op", "")
                await run("inline", "i" * args.inline)
                before = int((await admin.redis.info("memory"))["used_memory"])
                name = await run("redis", "r" * args.large)
                memory.append(int((await admin.redis.info("memory"))["used_memory"]) - before)
                await admin.delete(run_keys(namespace, name, 1))
    finally:
        operator.stop()
    return {"times": times, "memory": memory}


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    times, memory = figures["times"], figures["memory"]
    floor = statistics.median(times["no-op"])
    table = Table(
        title=f"kiq to result, one task at a time, median of {args.rounds} (local control plane, pods are processes)"
    )
    for column in ("run", "argument and result", "seconds", "beyond a no-op task"):
        table.add_column(column)
    table.add_row("no-op", "-", f"{floor:.2f}", "")
    for key, size, where in (("inline", args.inline, "inline in the TaskRun"), ("redis", args.large, "through Redis")):
        median = statistics.median(times[key])
        table.add_row(key, f"{size / 1e6:g} MB each, {where}", f"{median:.2f}", f"{median - floor:+.2f}")
    console = Console()
    console.print(table)
    console.print("rounds (s): " + "; ".join(f"{k} {', '.join(f'{v:.2f}' for v in vs)}" for k, vs in times.items()))
    console.print(
        f"Redis memory per {args.large / 1e6:g} MB run (argument, result and output tail, kept until the TTL): "
        f"median {statistics.median(memory) / 2**20:.1f} MiB (rounds: {', '.join(f'{m / 2**20:.1f}' for m in memory)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large", type=int, default=10_000_000, help="bytes of the large argument (and result)")
    parser.add_argument("--inline", type=int, default=100_000, help="bytes of the inline argument (and result)")
    args = parser.parse_args()

    with local_cluster() as cluster, running_redis() as server:
        figures = asyncio.run(measure(cluster, server, args, server.directory))
        report(figures, args)


if __name__ == "__main__":
    main()
