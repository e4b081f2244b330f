"""python -m tests.kind {build,up,down,env}

build  install what is missing, build the tool chain and every image (cached by version)
up     build, then create the kind cluster `podiq` from the local node image and load
       podiq's images into it; prints `export KUBECONFIG=... PATH=...` lines
down   delete the cluster and stop the Docker engine if `up` started it
env    print the export lines again
"""

from __future__ import annotations

import argparse
import shlex
import sys

from . import cluster, dockerd, harness, toolchain
from .steps import KindError


def _print_env() -> None:
    print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig()))}")
    print(f"export PATH={shlex.quote(toolchain.binaries().path())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kind", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("build", "up", "down", "env"))
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            engine = dockerd.Engine()
            try:
                harness.build(engine)
            finally:
                if engine.started:
                    engine.stop()
        elif args.command == "up":
            harness.up()
            _print_env()
        elif args.command == "down":
            harness.down()
        else:
            _print_env()
    except KindError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
