"""`podiq schedules list|delete`: the schedules in a namespace (CronJobs and pending one-shot runs)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from rich.table import Table

from podiq.cli._cluster import cluster_command, console
from podiq.kubernetes.cronjobs import ScheduleEntry
from podiq.kubernetes.schedules import KubernetesScheduleSource


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("schedules", help="list or delete schedules (CronJobs and pending one-shot runs)")
    commands = parser.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND")

    def command(name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        return cluster_command(commands, name, help, lambda args: _connected(args, handler))

    command("list", "list the schedules in a namespace", list_schedules)
    delete = command(
        "delete", "delete a schedule: its CronJob, or its one-shot run if not started yet", delete_schedule
    )
    delete.add_argument("schedule_id", metavar="ID")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


Handler = Callable[[argparse.Namespace, KubernetesScheduleSource], Awaitable[int]]


async def _connected(args: argparse.Namespace, handler: Handler) -> int:
    source = KubernetesScheduleSource(namespace=args.namespace, kubeconfig=args.kubeconfig)
    await source.startup()
    try:
        return await handler(args, source)
    finally:
        await source.shutdown()


def schedules_table(namespace: str, entries: list[ScheduleEntry]) -> Table:
    table = Table(title=f"Schedules in {namespace}")
    for column in ("id", "kind", "when", "task", "policy", "last fired", "active", "resource"):
        table.add_column(column)
    for entry in sorted(entries, key=lambda e: e.schedule.schedule_id):
        schedule = entry.schedule
        table.add_row(
            schedule.schedule_id,
            entry.kind + (" (suspended)" if entry.suspended else ""),
            entry.when,
            schedule.task_name,
            entry.concurrency_policy or "",
            entry.last_fired.strftime("%Y-%m-%d %H:%M:%SZ") if entry.last_fired else "",
            str(entry.active) if entry.kind != "time" else "",
            entry.resource,
        )
    return table


async def list_schedules(args: argparse.Namespace, source: KubernetesScheduleSource) -> int:
    console.print(schedules_table(args.namespace, await source.list_entries()), width=200)
    return 0


async def delete_schedule(args: argparse.Namespace, source: KubernetesScheduleSource) -> int:
    deleted = await source.delete(args.schedule_id)
    if not deleted:
        console.print(
            f"[red]No schedule {args.schedule_id!r} in {args.namespace}[/] (or its one-shot run has started). "
            f"`podiq schedules list -n {args.namespace}` shows the ones there are."
        )
        return 1
    console.print(f"Deleted schedule {args.schedule_id}: {', '.join(deleted)}. TaskRuns it already made are kept.")
    return 0
