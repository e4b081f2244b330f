"""Runs under faults on the local control plane; prints figures, asserts nothing.

    python bench/chaos.py [--runs 200] [--kills 10] [--restarts 1] [--component apiserver]

N no-op tasks are sent through KubernetesBroker and awaited while the operator is
SIGKILLed `--kills` times at random moments (and started again at once), and the
`--component` (kube-apiserver or etcd) is killed and restarted `--restarts` times. The
kills fall at random points of the run's progress (after the first kiq, before 90% of the runs
have finished), the restarts within 10 s of the last kiq, so that every client is waiting. Printed: how many runs ended and how, none lost, Jobs per TaskRun (an
attempt that got two Jobs would show), runs whose status records more attempts than Jobs,
results written over (a second result on a TaskRun, seen by a watch of every change), every
waiter's result, the runs in flight at each fault, and the time from the first kiq to the last
result. Each task is a pod (a Python process on the same cores): 1,000 runs took 569–721 s on 2
busy cores.

tests/integration/test_reliability.py runs the same scenario (:func:`chaos`) at the issue's
sizes (R1, R2) and asserts on these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
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

NAMESPACE = "bench-e2e"


@dataclasses.dataclass
class Figures:
    runs: int
    elapsed: float
    phases: collections.Counter[str]
    lost: int
    results: int
    errors: list[str]
    max_jobs: int
    two_jobs: int
    extra_attempts: int
    overwritten: list[str]
    """TaskRuns whose result was replaced by another one after it was first written."""
    results_seen: int
    """TaskRuns whose result the watch of every change saw written."""
    observer_relists: int
    """Times that watch had to list afresh (a 410): changes between those could go unseen."""
    relists: int
    faults: list[tuple[str, int]]
    """Each fault applied, with the runs still without a result (sent or not) at that moment."""

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("phases", ", ".join(f"{k} {v}" for k, v in sorted(self.phases.items()))),
            ("TaskRuns lost", str(self.lost)),
            ("waiters with their result (succeeded)", f"{self.results} of {self.runs}"),
            ("most Jobs for one TaskRun", str(self.max_jobs)),
            ("TaskRuns with two Jobs", str(self.two_jobs)),
            ("succeeded TaskRuns recording more attempts than Jobs", str(self.extra_attempts)),
            ("results written over (a second result)", str(len(self.overwritten))),
            ("results seen written by the watch", f"{self.results_seen} of {self.runs}"),
            ("that watch listed afresh (410)", str(self.observer_relists)),
            ("the client's watch listed again", str(self.relists)),
            ("faults (runs in flight at each)", ", ".join(f"{kind} ({n})" for kind, n in self.faults) or "none"),
            ("first kiq to last result", f"{self.elapsed:.1f} s"),
        ]


class ResultWatch:
    """Follows every change of the namespace's TaskRuns and notes each result written.

    A result that changes once set is a result written twice (a second execution, or a
    second writer). The watch resumes from its last resourceVersion after the API server
    goes away, so it sees the changes made meanwhile; only a 410 makes it list afresh.
    """

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.results: dict[str, str] = {}
        self.overwritten: set[str] = set()
        self.relists = 0

    def _note(self, obj: dict[str, Any]) -> None:
        result = (obj.get("status") or {}).get("result")
        if result is None:
            return
        name = obj["metadata"]["name"]
        text = json.dumps(result, sort_keys=True)
        if self.results.get(name, text) != text:
            self.overwritten.add(name)
        self.results[name] = text

    async def run(self) -> None:
        from kubernetes_asyncio import client, config, watch
        from kubernetes_asyncio.client.exceptions import ApiException

        from podiq.kubernetes.resources import GROUP, PLURAL, VERSION

        api_client = await config.new_client_from_config(config_file=self.kubeconfig)
        api = client.CustomObjectsApi(api_client)
        resource_version: str | None = None
        try:
            while True:
                try:
                    if resource_version is None:
                        listing = await api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                        for item in listing["items"]:
                            self._note(item)
                        resource_version = listing["metadata"]["resourceVersion"]
                    stream = watch.Watch().stream(
                        api.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        self.namespace,
                        PLURAL,
                        resource_version=resource_version,
                        timeout_seconds=30,
                        _request_timeout=45,
                    )
                    async for event in stream:
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=obj.get("code", 500), reason=obj.get("message", ""))
                        resource_version = obj["metadata"]["resourceVersion"]
                        self._note(obj)
                except asyncio.CancelledError:
                    raise
                except ApiException as exc:
                    if exc.status == 410:
                        resource_version, self.relists = None, self.relists + 1
                    await asyncio.sleep(0.5)
                except Exception:  # noqa: BLE001 - the API server is away: resume from the last change seen
                    await asyncio.sleep(0.5)
        finally:
            await api_client.close()


async def chaos(
    cluster: Cluster,
    log_dir: Path,
    *,
    runs: int,
    kills: int = 0,
    restarts: int = 0,
    component: str = "apiserver",
    timeout: float = 1800,
    namespace: str = NAMESPACE,
) -> Figures:
    """The scenario: ``runs`` no-op tasks in ``namespace`` (set up by :func:`bench.kubernetes.prepare`
    or with the chart's RBAC), the operator killed ``kills`` times at random points of the
    run's progress, ``component`` restarted ``restarts`` times
    within 10 s of the last kiq, while every client waits."""
    from bench import k8s_tasks
    from podiq import gather

    operator = Operator(cluster, [namespace], log_dir / "operator.log", 20, None)
    operator.start()
    broker = k8s_tasks.broker
    broker.kubeconfig, broker.namespace = str(cluster.kubeconfig), namespace
    observer = ResultWatch(str(cluster.kubeconfig), namespace)
    observing = asyncio.ensure_future(observer.run())
    applied: list[tuple[str, int]] = []
    waiting: asyncio.Future[Any] | None = None
    mine: set[str] = set()

    def finished() -> int:
        return len(mine & observer.results.keys())

    async def apply(fault: str) -> None:
        applied.append((fault, runs - finished()))
        if fault == "kill":
            assert operator.process is not None
            operator.process.kill()  # SIGKILL: no graceful shutdown
            operator.process.wait(timeout=10)
            operator.start()
        else:
            await asyncio.to_thread(cluster.control_plane.restart, fault, down_for=2, hard=True)

    async def inject(faults: list[str], budget: float) -> None:
        """Each fault at a random moment of the next ``budget`` seconds, while runs are unfinished."""
        origin = time.monotonic()
        for moment, fault in sorted((random.uniform(0, budget), fault) for fault in faults):
            await asyncio.sleep(max(moment - (time.monotonic() - origin), 0))
            if waiting is not None and waiting.done():
                return
            await apply(fault)

    async def kill_in_flight(count: int) -> None:
        """The kills at random points of the run's progress (between none and 90% of the runs
        finished), so that on any machine's speed each one meets runs in flight."""
        for share in sorted(random.uniform(0, 0.9) for _ in range(count)):
            while not mine or finished() < share * runs:
                await asyncio.sleep(0.2)
            await apply("kill")
            await asyncio.sleep(random.uniform(0, 1))  # kills at one point still fall apart

    started = time.monotonic()
    try:
        async with broker:
            # The operator's kills fall anywhere from the first kiq on; the API server's (or
            # etcd's) restarts once every run is sent, so that they meet every client waiting.
            killing = asyncio.ensure_future(kill_in_flight(kills))
            handles = []
            for _ in range(runs):
                handle = await k8s_tasks.noop.kicker().kiq()
                handles.append(handle)
                mine.add(handle.task_id)
            waiting = asyncio.ensure_future(gather(*handles, timeout=timeout))
            await inject([component] * restarts, 10.0)
            results = await waiting
            elapsed = time.monotonic() - started
            killing.cancel()  # kills still to come found every run finished
            with contextlib.suppress(asyncio.CancelledError):
                await killing
            relists = broker.watch.relists if broker.watch else 0
        # The watch may trail the waiters by a moment.
        for _ in range(100):
            if mine <= observer.results.keys():
                break
            await asyncio.sleep(0.1)
    finally:
        observing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observing
        operator.stop()
    taskruns = {r["metadata"]["name"]: r for r in cluster.get("taskruns", "-n", namespace)["items"]}
    jobs = collections.Counter(
        j["metadata"]["labels"]["podiq.io/taskrun"] for j in cluster.get("jobs", "-n", namespace)["items"]
    )
    found = [taskruns.get(h.task_id) for h in handles]
    statuses = [(r or {}).get("status", {}) for r in found]
    return Figures(
        runs=runs,
        elapsed=elapsed,
        phases=collections.Counter(s.get("phase", "lost") for s in statuses),
        lost=sum(r is None for r in found),
        results=sum(1 for r in results if not r.is_err),
        errors=[str(r.error)[:200] for r in results if r.is_err],
        max_jobs=max((jobs[h.task_id] for h in handles), default=0),
        two_jobs=sum(jobs[h.task_id] > 1 for h in handles),
        # Among runs that succeeded (a run that could not start has its Job deleted).
        extra_attempts=sum(
            s.get("attempts", 0) > jobs[h.task_id]
            for s, h in zip(statuses, handles, strict=True)
            if s.get("phase") == "Succeeded"
        ),
        overwritten=sorted(mine & observer.overwritten),
        results_seen=len(mine & observer.results.keys()),
        observer_relists=observer.relists,
        relists=relists,
        faults=applied,
    )


def report(figures: Figures, title: str) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.rows():
        table.add_row(name, value)
    console = Console()
    console.print(table)
    if figures.errors:
        console.print(f"[red]{len(figures.errors)} failed:[/] {figures.errors[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="tasks, each a pod")
    parser.add_argument("--kills", type=int, default=10, help="times the operator is SIGKILLed")
    parser.add_argument("--restarts", type=int, default=1, help="times the component is killed and restarted")
    parser.add_argument("--component", choices=["apiserver", "etcd"], default="apiserver")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every result")
    args = parser.parse_args()

    with local_cluster() as cluster:
        prepare(cluster, 0)
        figures = asyncio.run(
            chaos(
                cluster,
                cluster.state_dir,
                runs=args.runs,
                kills=args.kills,
                restarts=args.restarts,
                component=args.component,
                timeout=args.timeout,
            )
        )
    report(
        figures,
        f"{args.runs} runs, operator SIGKILLed {args.kills}x, {args.component} restarted {args.restarts}x",
    )


if __name__ == "__main__":
    main()
