"""Runs under faults on the local control plane; prints figures, asserts nothing.

    python bench/chaos.py [--runs 200] [--kills 10] [--restarts 1]

N no-op tasks are sent through KubernetesBroker and awaited while the operator is
SIGKILLed `--kills` times at random moments (and started again at once), then
kube-apiserver is killed and restarted `--restarts` times. Printed: how many runs ended and
how, none lost, Jobs per TaskRun (an attempt that got two Jobs would show), runs whose
status records more attempts or reports than Jobs, every waiter's result, and the time
from the first kiq to the last result. Each task is a pod (a Python process on the same
cores), so 1,000 runs take about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.kubernetes import Operator, local_cluster, prepare  # noqa: E402 - imported once the repository is on sys.path
from tests.cluster.cluster import Cluster  # noqa: E402 - imported once the repository is on sys.path


async def chaos(cluster: Cluster, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from bench import k8s_tasks
    from podiq import gather

    operator = Operator(cluster, ["bench-e2e"], log_dir / "operator.log", 20, None)
    operator.start()
    broker = k8s_tasks.broker
    broker.kubeconfig = str(cluster.kubeconfig)
    started = time.monotonic()
    async with broker:
        handles = [await k8s_tasks.noop.kicker().kiq() for _ in range(args.runs)]
        waiting = asyncio.ensure_future(gather(*handles, timeout=args.timeout))
        budget = max(args.runs / 2.0, 20.0)  # seconds over which the faults are spread
        moments = sorted(random.uniform(0, budget) for _ in range(args.kills + args.restarts))
        faults = ["kill"] * args.kills + ["restart"] * args.restarts
        random.shuffle(faults)
        for moment, fault in zip(moments, faults):
            await asyncio.sleep(max(moment - (time.monotonic() - started), 0))
            if waiting.done():
                break
            if fault == "kill":
                assert operator.process is not None
                operator.process.kill()  # SIGKILL: no graceful shutdown
                operator.process.wait(timeout=10)
                operator.start()
            else:
                await asyncio.to_thread(cluster.control_plane.restart, "apiserver", down_for=2, hard=True)
        results = await waiting
        elapsed = time.monotonic() - started
        relists = broker.watch.relists if broker.watch else 0
    operator.stop()
    runs = {r["metadata"]["name"]: r for r in cluster.get("taskruns", "-n", "bench-e2e")["items"]}
    jobs = collections.Counter(
        j["metadata"]["labels"]["podiq.io/taskrun"] for j in cluster.get("jobs", "-n", "bench-e2e")["items"]
    )
    mine = [runs.get(h.task_id) for h in handles]
    phases = collections.Counter((r or {}).get("status", {}).get("phase", "lost") for r in mine)
    return {
        "elapsed": elapsed,
        "phases": phases,
        "lost": sum(r is None for r in mine),
        "results": sum(1 for r in results if not r.is_err),
        "errors": [str(r.error)[:120] for r in results if r.is_err],
        "max_jobs": max((jobs[h.task_id] for h in handles), default=0),
        "two_jobs": sum(jobs[h.task_id] > 1 for h in handles),
        # Among runs that succeeded (a run that could not start has its Job deleted).
        "extra_attempts": sum(
            (r or {}).get("status", {}).get("attempts", 0) > jobs[h.task_id]
            for r, h in zip(mine, handles)
            if (r or {}).get("status", {}).get("phase") == "Succeeded"
        ),
        "relists": relists,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="tasks, each a pod")
    parser.add_argument("--kills", type=int, default=10, help="times the operator is SIGKILLed")
    parser.add_argument("--restarts", type=int, default=1, help="times kube-apiserver is killed and restarted")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every result")
    args = parser.parse_args()

    with local_cluster() as cluster:
        prepare(cluster, 0)
        figures = asyncio.run(chaos(cluster, args, cluster.state_dir))
    table = Table(
        title=f"{args.runs} runs, operator SIGKILLed {args.kills}x, kube-apiserver restarted {args.restarts}x"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in [
        ("phases", ", ".join(f"{k} {v}" for k, v in sorted(figures["phases"].items()))),
        ("TaskRuns lost", figures["lost"]),
        ("waiters with their result (succeeded)", f"{figures['results']} of {args.runs}"),
        ("most Jobs for one TaskRun", figures["max_jobs"]),
        ("TaskRuns with two Jobs", figures["two_jobs"]),
        ("succeeded TaskRuns recording more attempts than Jobs", figures["extra_attempts"]),
        ("the client's watch listed again", figures["relists"]),
        ("first kiq to last result", f"{figures['elapsed']:.1f} s"),
    ]:
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    if figures["errors"]:
        console.print(f"[red]{len(figures['errors'])} failed:[/] {figures['errors'][:3]}")


if __name__ == "__main__":
    main()
