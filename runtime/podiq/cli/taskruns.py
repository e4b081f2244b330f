"""`podiq get|list|logs|cancel`: TaskRuns for people, in readable tables."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from podiq.cli import listing
from podiq.cli._cluster import cluster_command, console
from podiq.exceptions import StoreError
from podiq.kubernetes.api import TaskRunApi
from podiq.kubernetes.connecting import api_client
from podiq.kubernetes.offloading import read_result
from podiq.kubernetes.resources import TaskRun
from podiq.kubernetes.storage import ENV_REDIS_URL, RedisStore, StoreSettings
from podiq.kubernetes.watching import follow


def add_parser(subparsers: Any) -> None:
    def command(name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        return cluster_command(subparsers, name, help, lambda args: _connected(args, handler))

    get = command("get", "show one TaskRun; --watch follows its progress until it finishes", get_taskrun)
    get.add_argument("name")
    get.add_argument("-w", "--watch", action="store_true")
    _redis_option(get)
    lister = command("list", "list TaskRuns", list_taskruns)
    lister.add_argument("--task", help="only runs of this task (module:function)")
    lister.add_argument("--phase", help="only runs in this phase, e.g. Failed")
    lister.add_argument("-o", "--output", choices=["wide"], help="wide: also reason, duration, Job and message")
    logs = command(
        "logs", "print the output of a TaskRun's latest pod (its tail from Redis once the pod is gone)", show_logs
    )
    logs.add_argument("name")
    _redis_option(logs)
    cancel = command("cancel", "cancel a TaskRun (its Job is deleted; waiters get TaskCancelledError)", cancel_taskrun)
    cancel.add_argument("name")


Handler = Callable[[argparse.Namespace, TaskRunApi], Awaitable[int]]


def _redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help=f"Redis holding large results and output (default: ${ENV_REDIS_URL})")


@contextlib.asynccontextmanager
async def _store(args: argparse.Namespace) -> AsyncIterator[RedisStore | None]:
    settings = StoreSettings.from_env(url=getattr(args, "redis_url", None))
    if not settings.url:
        yield None
        return
    async with RedisStore(settings) as store:
        yield store


async def _connected(args: argparse.Namespace, handler: Handler) -> int:
    async with await api_client(args.kubeconfig) as connection:
        args.connection = connection
        return await handler(args, TaskRunApi(connection))


async def _read(api: TaskRunApi, namespace: str, name: str) -> TaskRun | None:
    body = await api.get(namespace, name)
    if body is None:
        console.print(f"[red]No TaskRun {namespace}/{name}.[/] `podiq list -n {namespace}` shows the ones there are.")
        return None
    return TaskRun.from_api(body)


async def get_taskrun(args: argparse.Namespace, api: TaskRunApi) -> int:
    taskrun = await _read(api, args.namespace, args.name)
    if taskrun is None:
        return 1
    if not args.watch:
        console.print(details(taskrun, await _stored_result(args, taskrun)))
        return 0
    with Live(details(taskrun), console=console, refresh_per_second=4) as live:
        finished = await follow(api, args.namespace, args.name, lambda seen: live.update(details(seen)))
        if finished is None:
            live.stop()
            console.print(f"[red]TaskRun {args.namespace}/{args.name} was deleted before it finished.[/]")
            return 1
        taskrun = finished
        live.update(details(taskrun, await _stored_result(args, taskrun)))
    return 0 if taskrun.status.is_succeeded() else 1


async def _stored_result(args: argparse.Namespace, taskrun: TaskRun) -> dict[str, Any] | str | None:
    """The result kept in Redis, or why it cannot be shown."""
    if taskrun.status.result_ref is None or not taskrun.is_done():
        return None
    try:
        async with _store(args) as store:
            return (await read_result(store, taskrun)).model_dump(mode="json")
    except StoreError as exc:
        return str(exc)


def _shown(value: Any, limit: int = 2000) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def details(taskrun: TaskRun, stored: dict[str, Any] | str | None = None) -> Table:
    status = taskrun.status
    table = Table(show_header=False, title=f"TaskRun {taskrun.namespace}/{taskrun.name}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("task", taskrun.spec.task_name)
    table.add_row("phase", f"{status.phase.value if status.phase else 'Pending'} ({status.reason.value})")
    table.add_row("message", status.message)
    if status.progress is not None:
        bar = ProgressBar(total=status.progress.total or 1, completed=status.progress.current, width=30)
        table.add_row("progress", bar)
        table.add_row("", f"{status.progress.text} {status.progress.message}")
    table.add_row("attempts", f"{status.attempts} ({status.retries} retried, {status.requeues} requeued)")
    table.add_row("job / pod", f"{status.job_name or '-'} / {status.pod_name or '-'}")
    table.add_row("duration", status.duration or "-")
    result = stored if isinstance(stored, dict) else status.result
    if result is not None:
        error = result.get("error")
        table.add_row(
            "result", f"[red]{error['type']}: {error['message']}[/]" if error else _shown(result.get("return_value"))
        )
    elif isinstance(stored, str):
        table.add_row("result", f"[yellow]{stored}[/]")
    return table


async def list_taskruns(args: argparse.Namespace, api: TaskRunApi) -> int:
    runs = [TaskRun.from_api(item) for item in (await api.list(args.namespace)).items]
    runs = [run for run in runs if listing.matches(run, args.task, args.phase)]
    if not runs:
        console.print(f"No TaskRuns in {args.namespace}{' that match' if args.task or args.phase else ''}.")
        return 0
    console.print(listing_table(runs, wide=args.output == "wide"))
    return 0


def listing_table(runs: list[TaskRun], *, wide: bool = False, now: datetime | None = None) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    cells = listing.rows(runs, wide=wide, now=now)
    for index, column in enumerate(listing.WIDE_COLUMNS if wide else listing.COLUMNS):
        # Short columns keep their full width; the long ones (name, task, message) fold.
        width = max(len(column.header), *(len(row[index]) for row in cells))
        table.add_column(
            column.header, overflow="fold", no_wrap=not column.folds, min_width=None if column.folds else width
        )
    for row in cells:
        table.add_row(*row)
    return table


async def show_logs(args: argparse.Namespace, api: TaskRunApi) -> int:
    from podiq.kubernetes.broker import taskrun_logs

    taskrun = await _read(api, args.namespace, args.name)
    if taskrun is None:
        return 1
    async with _store(args) as store:
        logs = await taskrun_logs(args.connection, store, taskrun)
    if logs is None:
        hint = (
            ""
            if taskrun.status.log_ref is None
            else f"; its output's tail is in Redis: set ${ENV_REDIS_URL} or --redis-url"
        )
        if taskrun.spec.pool is not None and taskrun.status.log_ref is None:
            console.print(
                f"[yellow]TaskRun {args.name} runs on pool {taskrun.spec.pool}: its output is kept when an attempt "
                "ends, if it wrote any; none is kept yet.[/]"
            )
            return 1
        console.print(
            f"[yellow]TaskRun {args.name} has no pod with logs (not started yet, or the pod is gone){hint}.[/]"
        )
        return 1
    print(logs, end="")
    return 0


async def cancel_taskrun(args: argparse.Namespace, api: TaskRunApi) -> int:
    taskrun = await _read(api, args.namespace, args.name)
    if taskrun is None:
        return 1
    if taskrun.is_done():
        console.print(
            f"TaskRun {args.name} already finished ({taskrun.status.phase.value if taskrun.status.phase else ''})."
        )
        return 0
    await api.patch_spec(args.namespace, args.name, {"cancelled": True})
    console.print(f"Cancelling TaskRun {args.namespace}/{args.name}.")
    return 0
