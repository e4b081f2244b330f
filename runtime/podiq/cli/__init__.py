"""The `podiq` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from podiq import __version__
from podiq.cli import demo, operator, run, schedules, taskruns

#: Modules with `add_parser(subparsers)`; the parser they add sets `handler(args) -> int`.
COMMANDS = [demo, taskruns, schedules, run, operator]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podiq", description="Python tasks with the taskiq API, on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"podiq {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
