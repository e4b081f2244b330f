"""`podiq demo`: runs the example tasks of podiq.demo and shows them live."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from podiq import ResultNotReadyError, TaskiqResult, gather

# Read by podiq.demo when it is imported, so it is set before that import (and not imported here).
BROKER_VARIABLE = "PODIQ_DEMO_BROKER"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run example tasks and show their progress and results")
    parser.add_argument(
        "--broker",
        choices=["inmemory", "kubernetes"],
        default="inmemory",
        help="in-process (default), or TaskRuns on the cluster in KUBECONFIG (needs the podiq operator there)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the tasks before giving up and saying why they wait (default 300)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    os.environ[BROKER_VARIABLE] = args.broker
    return asyncio.run(_demo(Console(), args.broker, args.timeout))


async def _demo(console: Console, where: str, timeout: float = 300.0) -> int:
    from podiq import demo

    started = time.perf_counter()
    async with demo.broker:
        runs: dict[str, TaskiqResult[Any]] = {
            "build_report('sales', 40)": await demo.build_report.kiq("sales", 40),
            "count_primes(2_000_000)": await demo.count_primes.kiq(2_000_000),
            "flaky_fetch('https://example.org')": await demo.flaky_fetch.kiq("https://example.org"),
            "wait_for_turn(3)": await demo.wait_for_turn.kiq(3),
            "divide(1, 0)": await demo.divide.kiq(1, 0),
        }
        title = f"podiq demo: tasks on {type(demo.broker).__name__}"
        deadline = time.monotonic() + timeout
        with Live(console=console, refresh_per_second=12, transient=False) as live:
            waiting = asyncio.ensure_future(gather(*runs.values()))
            while not waiting.done() and time.monotonic() < deadline:
                live.update(await _table(title, runs, demo.broker))
                await asyncio.wait({waiting}, timeout=0.08 if where == "inmemory" else 0.5)
            live.update(await _table(title, runs, demo.broker))
        if not waiting.done():
            waiting.cancel()
            _gave_up(console, runs, demo.broker, timeout)
            return 1
        await waiting
    console.print()
    failed = [name for name, result in runs.items() if result.is_err]
    console.print(
        f"[bold]{len(runs)} tasks[/] in {time.perf_counter() - started:.2f} s: "
        f"{len(runs) - len(failed)} succeeded, {len(failed)} failed as designed ({', '.join(failed)})."
    )
    for name, result in runs.items():
        if result.is_err:
            console.print(f"  {name} raised {type(result.error).__name__}: {result.error}")
    return 0


def _waiting_why(broker: Any, result: TaskiqResult[Any]) -> tuple[str, str] | None:
    """On Kubernetes, the state the broker's watch last saw: (phase and reason, message)."""
    watch = getattr(broker, "watch", None)
    seen = watch.latest.get(result.task_id) if watch is not None else None
    if seen is None or seen.status.phase is None:
        return None
    status = seen.status
    return f"{status.phase.value.lower()}: {status.reason.value}", status.message


def _gave_up(console: Console, runs: dict[str, TaskiqResult[Any]], broker: Any, timeout: float) -> None:
    console.print(f"\n[bold red]The demo's tasks did not all finish within {timeout:g} s.[/]")
    for name, result in runs.items():
        try:
            result.is_err  # noqa: B018 - reading it raises until the run finished
        except ResultNotReadyError:
            why = _waiting_why(broker, result)
            state = f"{why[0]}: {why[1]}" if why else "no status yet: no podiq operator has picked it up"
            console.print(f"  {name} (TaskRun {result.task_id}): {state}")
    namespace = getattr(broker, "namespace", "default")
    console.print(
        "Check that the podiq operator runs (`kubectl get pods -A -l app.kubernetes.io/name=podiq`) and serves "
        f"namespace {namespace!r} (the chart's watchNamespaces), then `kubectl describe taskrun -n {namespace} NAME` "
        f"and `kubectl get events -n {namespace}` for why a run waits. Wait longer with `podiq demo --timeout SECONDS`."
    )


async def _table(title: str, runs: dict[str, TaskiqResult[Any]], broker: Any = None) -> Table:
    table = Table(title=title)
    for column in ("task", "state", "progress", "result"):
        table.add_column(column)
    for name, result in runs.items():
        try:
            failed = result.is_err
        except ResultNotReadyError:
            reported = await result.get_progress()
            bar = ProgressBar(total=reported.total or 1, completed=reported.current, width=24) if reported else ""
            why = _waiting_why(broker, result)
            if why is not None and not why[0].startswith("running"):
                table.add_row(name, f"[yellow]{why[0]}[/]", bar, why[1][:80])
            else:
                table.add_row(name, "running", bar, reported.message if reported else "")
            continue
        if failed:
            table.add_row(name, "[red]failed[/]", "", f"{type(result.error).__name__}: {result.error}")
        else:
            table.add_row(name, "[green]done[/]", f"{result.execution_time:.2f} s", str(result.return_value)[:60])
    return table
