"""`podiq schedules list|delete`: the schedules in a namespace (CronJobs and pending one-shot runs)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.config.config_exception import ConfigException
from rich.console import Console
from rich.table import Table

from podiq.kubernetes.connecting import default_namespace
from podiq.kubernetes.schedules import KubernetesScheduleSource, ScheduleEntry

console = Console()


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("schedules", help="list or delete schedules (CronJobs and pending one-shot runs)")
    commands = parser.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND")

    def command(name: str, help: str, handler: Callable[[argparse.Namespace, KubernetesScheduleSource], Awaitable[int]]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
        sub.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
        sub.set_defaults(handler=lambda args: asyncio.run(_connected(args, handler)))
        return sub

    command("list", "list the schedules in a namespace", list_schedules)
    delete = command("delete", "delete a schedule: its CronJob, or its one-shot run if not started yet", delete_schedule)
    delete.add_argument("schedule_id", metavar="ID")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


async def _connected(args: argparse.Namespace, handler: Callable[[argparse.Namespace, KubernetesScheduleSource], Awaitable[int]]) -> int:
    args.namespace = args.namespace or default_namespace(args.kubeconfig)
    source = KubernetesScheduleSource(namespace=args.namespace, kubeconfig=args.kubeconfig)
    try:
        await source.startup()
    except ConfigException as exc:
        console.print(f"[red]Cannot reach a cluster:[/] {exc}. Point KUBECONFIG or --kubeconfig at a kubeconfig file.")
        return 2
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
            schedule.schedule_id, entry.kind + (" (suspended)" if entry.suspended else ""), entry.when,
            schedule.task_name, entry.concurrency_policy or "",
            entry.last_fired.strftime("%Y-%m-%d %H:%M:%SZ") if entry.last_fired else "",
            str(entry.active) if entry.kind != "time" else "", entry.resource,
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
