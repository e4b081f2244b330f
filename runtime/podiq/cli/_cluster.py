"""What every subcommand that talks to a cluster shares: its options and connection errors."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.config.config_exception import ConfigException
from rich.console import Console

from podiq.kubernetes.connecting import default_namespace

console = Console()


def cluster_command(
    subparsers: Any, name: str, help: str, run: Callable[[argparse.Namespace], Awaitable[int]]
) -> argparse.ArgumentParser:
    """A subcommand with -n/--namespace and --kubeconfig that runs `run(args)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.set_defaults(handler=lambda args: asyncio.run(_guarded(run, args)))
    return parser


async def _guarded(run: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    args.namespace = args.namespace or default_namespace(args.kubeconfig)
    try:
        return await run(args)
    except ConfigException as exc:
        console.print(f"[red]Cannot reach a cluster:[/] {exc}. Point KUBECONFIG or --kubeconfig at a kubeconfig file.")
        return 2
