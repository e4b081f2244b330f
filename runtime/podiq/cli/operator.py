"""`podiq operator`: runs the kopf operator in this process (needs the `operator` extra)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("operator", help="run the podiq operator (turns TaskRuns into Jobs)", add_help=False)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="operator options; see `podiq operator --help`")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from podiq_operator.main import cli
    except ImportError as exc:
        raise SystemExit(f"podiq operator needs the operator extra: pip install 'podiq[operator]' ({exc}).") from None
    cli(args.args)
    return 0
