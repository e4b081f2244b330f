"""TaskRuns through the operator on the local control plane; prints figures, asserts nothing.

    python bench/kubernetes.py [--dispatch 1000] [--e2e 200] [--concurrency 20] [--rounds 5]

- Ceiling: the same client creates Jobs directly (the operator's own Job bodies), as fast as
  `--concurrency` requests at a time allow.
- Dispatch: N TaskRuns are created while no operator runs; then one starts, and the time
  from its first Job to its N-th gives TaskRuns turned into Jobs per second (its start-up,
  process start to first Job, is shown apart). The controller manager is paused (SIGSTOP)
  for these measurements, so no pods are made for their Jobs, and those Jobs are deleted
  before it resumes.
- Each of `--rounds` rounds measures the ceiling right before and right after its dispatch
  and compares the dispatch with their mean, as the machine's speed drifts; the round with
  the median ratio is reported, with every round's ratio. The CPU each process
  spends per Job shows where the time goes (`--profile` records the operator with py-spy).
- End to end: tasks one at a time: kiq-to-result latency minus the pod's run time (process
  start to task end, from /proc); then M no-op tasks through KubernetesBroker at once, pods
  and all: tasks per second.
- API writes per task (from the API server's request counters) and the operator's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.cluster import building  # noqa: E402 - imported once the repository is on sys.path
from tests.cluster.cluster import Cluster  # noqa: E402 - imported once the repository is on sys.path
from tests.cluster.controlplane import ControlPlane, new_state_dir, remove_state_dir, run_root  # noqa: E402 - imported once the repository is on sys.path

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}


class Operator:
    def __init__(self, cluster: Cluster, namespaces: list[str], log: Path, workers: int, profile: Path | None) -> None:
        self.cluster, self.namespaces, self.log, self.workers = cluster, namespaces, log, workers
        self.profile = profile
        self.profiler: subprocess.Popen[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            **self.cluster.env,
            "PODIQ_METRICS_PORT": "0",
            "PODIQ_LIVENESS": "",
            "PODIQ_EVENTS": "false",
            "PODIQ_RUNTIME_IMAGE": "podiq-runtime:bench",
            "PODIQ_MAX_WORKERS": str(self.workers),
        }
        args = [sys.executable, "-m", "podiq_operator"] + [a for ns in self.namespaces for a in ("-n", ns)]
        self.process = subprocess.Popen(args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env)
        if self.profile is not None:  # a flame graph of dispatching, by py-spy (not pinned: pip install py-spy)
            self.profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--rate",
                    "250",
                    "--format",
                    "flamegraph" if self.profile.suffix == ".svg" else "raw",
                    "-o",
                    str(self.profile),
                    "-p",
                    str(self.process.pid),
                ]
            )

    def stop_profiling(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(timeout=60)
            self.profiler = None

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]  # present here

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the control plane, this client and (when given) the operator, between start and stop."""

    def __init__(self, cluster: Cluster, operator: Operator | None = None) -> None:
        self.pids = {
            name: proc.pid for name, proc in cluster.control_plane._procs.items() if name in ("apiserver", "etcd")
        }
        if operator is not None and operator.process is not None:
            self.pids["operator"] = operator.process.pid
        self.started = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        times = os.times()
        sample["client"] = times.user + times.system
        return sample

    def used(self) -> dict[str, float]:
        now = self._sample()
        return {name: now[name] - self.started[name] for name in now}


def api_writes(cluster: Cluster) -> dict[str, float]:
    """Write requests served so far, by resource[/subresource], from the API server's metrics."""
    body = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    counts: dict[str, float] = {}
    for line in body.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS:
            key = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


async def count_jobs(objects: client.CustomObjectsApi, namespace: str) -> int:
    """How many Jobs exist, from a one-item page (as a plain dict): far cheaper than a watch."""
    page = await objects.list_namespaced_custom_object("batch", "v1", namespace, "jobs", limit=1)
    return len(page["items"]) + (page["metadata"].get("remainingItemCount") or 0)


async def wait_for_jobs(api: client.ApiClient, namespace: str, count: int, timeout: float) -> tuple[float, float]:
    """Seconds from now until the first Job exists in `namespace`, and from then until `count` do.

    Polled every 20 ms rather than watched, so that measuring costs the API server next to nothing.
    """
    objects = client.CustomObjectsApi(api)
    started = time.perf_counter()
    first: float | None = None
    async with asyncio.timeout(timeout):
        while (seen := await count_jobs(objects, namespace)) < count:
            if seen and first is None:
                first = time.perf_counter()
            await asyncio.sleep(0.02)
    ended = time.perf_counter()
    first = first or ended
    return first - started, ended - first


async def bounded(concurrency: int, calls: list[Any]) -> float:
    """Run the coroutine factories with at most `concurrency` in flight; returns seconds taken."""
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Any) -> None:
        async with gate:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - started


async def measure(cluster: Cluster, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from bench import k8s_tasks
    from podiq.kubernetes.connecting import api_client
    from podiq.kubernetes.resources import TaskRun
    from podiq_operator.config import JobConfig
    from podiq_operator.jobs import build_job

    figures: dict[str, Any] = {}
    api = await api_client(str(cluster.kubeconfig))
    batch = client.BatchV1Api(api)
    broker = k8s_tasks.broker
    broker.kubeconfig = str(cluster.kubeconfig)
    await broker.connect()

    # The machine's speed drifts by a quarter within a minute, so each round measures the
    # ceiling right before and right after its dispatch, and compares with their mean.
    def job_bodies(label: str) -> list[dict[str, Any]]:
        bodies = []
        for i in range(args.dispatch):
            message = broker.taskrun_body(_message(f"ceiling-{label}-{i}"))
            run = TaskRun.from_api({**message, "metadata": {**message["metadata"], "uid": f"uid-{label}-{i}"}})
            job = build_job(run, 1, JobConfig())
            job["metadata"].pop("ownerReferences", None)  # no such TaskRun: keep the garbage collector out of it
            job["metadata"]["namespace"] = "bench-ceiling"
            bodies.append(job)
        return bodies

    async def ceiling(label: str) -> tuple[float, dict[str, float]]:
        """Jobs created directly by this client: Jobs per second, and the CPU it took."""
        bodies = job_bodies(label)
        meter = CpuMeter(cluster)
        seconds = await bounded(
            args.concurrency, [lambda b=b: batch.create_namespaced_job("bench-ceiling", b) for b in bodies]
        )
        return args.dispatch / seconds, meter.used()

    async def make_taskruns(round_: int) -> str:
        """TaskRuns made while no operator runs, in a namespace of their own."""
        broker.namespace = f"bench-dispatch-{round_}"
        await bounded(
            args.concurrency, [lambda i=i: broker.kick(_message(f"dispatch-{i}")) for i in range(args.dispatch)]
        )
        return broker.namespace

    async def dispatch(round_: int, namespace: str) -> dict[str, Any]:
        """An operator starts and turns the namespace's TaskRuns into Jobs."""
        profile = args.profile if round_ == args.rounds else None
        operator = Operator(cluster, [namespace], log_dir / f"operator-{round_}.log", args.concurrency, profile)
        operator.start()
        meter = CpuMeter(cluster, operator)
        startup_s, dispatch_s = await wait_for_jobs(api, namespace, args.dispatch, timeout=600)
        figures = {
            "operator_startup": startup_s,
            "dispatch": (args.dispatch - 1) / dispatch_s,
            "dispatch_with_startup": args.dispatch / (startup_s + dispatch_s),
            "operator_cpu": operator.cpu_seconds() / (startup_s + dispatch_s),
            "dispatch_cpu": meter.used(),
            "dispatch_mib": operator.peak_rss_mib(),
        }
        operator.stop_profiling()
        operator.stop()
        return figures

    controllers = cluster.control_plane._procs["controller-manager"]
    controllers.send_signal(signal.SIGSTOP)
    rounds = []
    for round_ in range(1, args.rounds + 1):
        namespace = await make_taskruns(round_)
        before, cpu_before = await ceiling(f"{round_}a")
        result = await dispatch(round_, namespace)
        after, cpu_after = await ceiling(f"{round_}b")
        result["ceiling"] = (before + after) / 2
        result["ceiling_cpu"] = {name: (cpu_before[name] + cpu_after[name]) / 2 for name in cpu_before}
        result["ratio"] = result["dispatch"] / result["ceiling"]
        rounds.append(result)
        print(
            f"round {round_}: ceiling {before:.0f} then {after:.0f} Jobs/s, dispatch {result['dispatch']:.0f} TaskRuns/s "
            f"({result['ratio']:.0%} of their mean)",
            flush=True,
        )
        for used in ("bench-ceiling", namespace):
            cluster.kubectl("delete", "taskruns,jobs", "--all", "-n", used, "--wait=false", timeout=300)
    rounds.sort(key=lambda r: r["ratio"])
    figures.update(rounds[len(rounds) // 2])
    figures["ratios"] = [r["ratio"] for r in rounds]
    figures["dispatch_mib"] = max(r["dispatch_mib"] for r in rounds)
    controllers.send_signal(signal.SIGCONT)

    # End to end, with pods.
    operator = Operator(cluster, ["bench-e2e"], log_dir / "operator-e2e.log", args.concurrency, None)
    operator.start()
    broker.namespace = "bench-e2e"
    await broker.shutdown()
    await broker.startup()
    # The controller manager first works through the dispatch rounds' deletions; one task
    # through and a pause keep that backlog out of the figures.
    await (await k8s_tasks.noop.kiq()).wait_result(timeout=600)
    await asyncio.sleep(15)
    writes_before = api_writes(cluster)
    failures: list[BaseException] = []

    async def one() -> tuple[float, float] | None:
        sent = time.time()
        handle = await k8s_tasks.noop.kiq()
        try:
            process_start, task_end = await handle.wait_result(timeout=600)
        except Exception as exc:  # noqa: BLE001 - counted and shown, not fatal to the other figures
            failures.append(exc)
            return None
        received = time.time()
        return received - sent, received - sent - (task_end - process_start)

    # Latency one task at a time, before the batch: after one, the Job controller (20 requests
    # a second by default) keeps the next Job waiting for its pod while it catches up.
    results = [r for r in [await one() for _ in range(args.latency)] if r is not None]
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(args.e2e)))
    e2e_s = time.perf_counter() - started
    figures["failures"] = [f"{type(f).__name__}: {f}" for f in failures]
    await asyncio.sleep(2)  # let the last status writes land in the counters
    writes_after = api_writes(cluster)
    await broker.shutdown()
    overheads = sorted(r[1] for r in results)
    latencies = sorted(r[0] for r in results)
    figures["e2e_rate"] = args.e2e / e2e_s
    figures["latency_median"] = statistics.median(latencies)
    figures["overhead_median"] = statistics.median(overheads)
    figures["overhead_p99"] = overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))]
    figures["writes"] = {
        k: (writes_after.get(k, 0) - writes_before.get(k, 0)) / (args.e2e + args.latency)
        for k in writes_after
        if writes_after.get(k, 0) != writes_before.get(k, 0)
    }
    figures["operator_mib"] = operator.peak_rss_mib()
    operator.stop()
    await api.close()
    return figures


def _message(task_id: str) -> Any:
    from podiq import TaskiqMessage

    return TaskiqMessage(task_id=task_id, task_name="bench.k8s_tasks:noop", labels={}, args=[], kwargs={})


def prepare(cluster: Cluster, rounds: int) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds" / "taskrun.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/taskruns.podiq.io", "--timeout=60s")
    for namespace in ("bench-ceiling", "bench-e2e", *(f"bench-dispatch-{n}" for n in range(1, rounds + 1))):
        cluster.kubectl("create", "namespace", namespace)
    rendered = cluster.helm(
        "template",
        "podiq",
        str(REPO_ROOT / "charts" / "podiq"),
        "--namespace",
        "bench-e2e",
        "--kube-version",
        "1.37.2",
        "--set",
        "watchNamespaces={bench-e2e}",
        "--show-only",
        "templates/serviceaccounts.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ).stdout
    cluster.apply(rendered, "-n", "bench-e2e")


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    table = Table(
        title=f"podiq on the local control plane: {args.dispatch:,} TaskRuns dispatched, {args.e2e:,} run end to end"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    ratio = figures["dispatch"] / figures["ceiling"]
    writes = figures["writes"]
    # podiq's own: the TaskRun, its status, the Job. Events are Kubernetes' controllers' (podiq's are off).
    podiq_writes = sum(v for k, v in writes.items() if k.startswith("taskruns") or k == "jobs")
    rows = [
        ("ceiling: Jobs/s created directly by the client, before and after (mean)", f"{figures['ceiling']:,.1f}", ""),
        ("operator start: process start to its first Job", f"{figures['operator_startup']:.2f} s", ""),
        (
            "operator dispatch: TaskRuns turned into Jobs per second, first Job to last",
            f"{figures['dispatch']:,.1f}",
            "",
        ),
        ("  the same, counting from the process start", f"{figures['dispatch_with_startup']:,.1f}", ""),
        (
            f"dispatch / ceiling (median of {args.rounds} rounds: {', '.join(f'{r:.0%}' for r in figures['ratios'])})",
            f"{ratio:.0%}",
            ">= 80%",
        ),
        ("operator CPU while dispatching (cores busy)", f"{figures['operator_cpu']:.2f}", ""),
        ("end to end: tasks/s (pods included)", f"{figures['e2e_rate']:,.2f}", ""),
        (f"kiq-to-result latency, median of {args.latency} one at a time", f"{figures['latency_median']:.2f} s", ""),
        ("  minus pod run time, median", f"{figures['overhead_median']:.2f} s", ""),
        ("  minus pod run time, p99", f"{figures['overhead_p99']:.2f} s", ""),
        ("podiq's API writes per task (TaskRun, Job, status)", f"{podiq_writes:.2f}", "<= 4"),
        (
            f"operator peak memory (RSS), dispatching {args.dispatch:,} at once",
            f"{figures['dispatch_mib']:.0f} MiB",
            "< 150 MiB",
        ),
        ("operator peak memory (RSS), end to end", f"{figures['operator_mib']:.0f} MiB", "< 150 MiB"),
    ]
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    if figures["failures"]:
        console.print(f"[red]{len(figures['failures'])} tasks failed:[/] {figures['failures'][:3]}")
    detail = Table(title="API writes per task by resource (Kubernetes' own controllers included)")
    detail.add_column("resource")
    detail.add_column("writes per task", justify="right")
    for key, value in sorted(writes.items()):
        detail.add_row(key, f"{value:.2f}")
    console.print(detail)
    cpu = Table(title="CPU milliseconds per Job created (2 cores shared by all)")
    cpu.add_column("process")
    cpu.add_column("ceiling", justify="right")
    cpu.add_column("dispatch", justify="right")
    for name in ("apiserver", "etcd", "client", "operator"):
        cells = [
            f"{figures[k][name] * 1000 / args.dispatch:.2f}" if name in figures[k] else ""
            for k in ("ceiling_cpu", "dispatch_cpu")
        ]
        cpu.add_row(name, *cells)
    console.print(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dispatch", type=int, default=1000, help="TaskRuns for the dispatch and ceiling figures")
    parser.add_argument("--e2e", type=int, default=200, help="tasks run end to end, each a pod")
    parser.add_argument("--latency", type=int, default=30, help="tasks run one at a time for the latency figures")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=20,
        help="requests in flight: the client's for the ceiling, the operator's PODIQ_MAX_WORKERS",
    )
    parser.add_argument("--rounds", type=int, default=5, help="ceiling-then-dispatch rounds; the median is reported")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the operator with py-spy: an SVG flame graph, or collapsed stacks for any other suffix",
    )
    args = parser.parse_args()

    with local_cluster() as cluster:
        prepare(cluster, args.rounds)
        figures = asyncio.run(measure(cluster, args, cluster.state_dir))
        report(figures, args)


@contextlib.contextmanager
def local_cluster() -> Iterator[Cluster]:
    """A fresh local control plane for one benchmark, KUBECONFIG pointing at it; gone afterwards."""
    state = new_state_dir(run_root())
    control_plane = ControlPlane(bin_dir=building.build(), state_dir=state)
    control_plane.start()
    try:
        cluster = Cluster(control_plane)
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        yield cluster
    finally:
        control_plane.stop()
        remove_state_dir(state)


if __name__ == "__main__":
    main()
