"""`podiq run` and `podiq worker`: the runtime entrypoints of a Job's pod (`python -m podiq.runtime`)
and of a TaskPool's worker pod (`python -m podiq.runtime.worker`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the attempt of the TaskRun named by PODIQ_TASKRUN_NAME (in a pod)")
    parser.set_defaults(handler=run)
    add_worker_parser(subparsers)


def run(args: argparse.Namespace) -> int:
    from podiq.runtime import main

    return main()


def add_worker_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="serve the runs of the TaskPool named by PODIQ_POOL (in a pool's pod)"
    )
    parser.set_defaults(handler=worker)


def worker(args: argparse.Namespace) -> int:
    from podiq.runtime.worker import main

    return main()
