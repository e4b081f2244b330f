"""`podiq run`: the runtime entrypoint of a task's pod (same as `python -m podiq.runtime`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the attempt of the TaskRun named by PODIQ_TASKRUN_NAME (in a pod)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from podiq.runtime import main

    return main()
