"""python -m tests.cluster {build,up,down,env}

build  build (or find cached) binaries and print their directory
up     start a cluster in the background; prints `export KUBECONFIG=...` and
       `export PATH=...` lines, so `eval "$(python -m tests.cluster up)"` works
down   stop the cluster started by `up`, leaving no processes behind
env    print the export lines of the running cluster again
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from . import building, procs
from .cluster import client_env
from .controlplane import ControlPlane, new_state_dir, remove_state_dir, run_root


def _current_file() -> Path:
    return run_root() / "current"


def _current_state() -> Path | None:
    try:
        path = Path(_current_file().read_text().strip())
    except FileNotFoundError:
        return None
    return path if path.is_dir() else None


def _print_env(state_dir: Path) -> None:
    info = json.loads((state_dir / "state.json").read_text())
    env = client_env(Path(info["bin_dir"]), Path(info["kubeconfig"]), state_dir)
    print(f"export KUBECONFIG={shlex.quote(env['KUBECONFIG'])}")
    print(f"export PATH={shlex.quote(env['PATH'])}")


def _running(state_dir: Path) -> bool:
    entries = procs.PidFile(state_dir / "pids.json").entries()
    return bool(entries) and all(procs.alive(e["pid"], e["exe"]) for e in entries)


def cmd_build() -> int:
    try:
        print(building.build())
    except building.BuildError as exc:
        print(f"error: build failed: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_up() -> int:
    current = _current_state()
    if current is not None and (current / "state.json").exists():
        if _running(current):
            print(f"a cluster is already up (state in {current}); `down` first to restart it", file=sys.stderr)
            _print_env(current)
            return 0
        # Left over from a cluster that died (or a reboot): clean it up and start anew.
        cmd_down()
    try:
        bin_dir = building.build()
    except building.BuildError as exc:
        print(f"error: build failed: {exc}", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    state = new_state_dir(run_root())
    control_plane = ControlPlane(bin_dir=bin_dir, state_dir=state)
    try:
        control_plane.start()
    except Exception as exc:  # noqa: BLE001 - report and leave nothing running
        print(f"error: the cluster did not start: {exc}\n(logs kept in {state / 'logs'})", file=sys.stderr)
        return 1
    _current_file().write_text(str(state))
    print(f"cluster up in {time.monotonic() - t0:.1f}s; state in {state}", file=sys.stderr)
    _print_env(state)
    return 0


def cmd_down() -> int:
    current = _current_state()
    if current is None:
        print("no cluster is up", file=sys.stderr)
        return 0
    ControlPlane(bin_dir=building.bin_dir(), state_dir=current).stop()
    remove_state_dir(current)
    _current_file().unlink(missing_ok=True)
    print("cluster stopped", file=sys.stderr)
    return 0


def cmd_env() -> int:
    current = _current_state()
    if current is None or not (current / "state.json").exists():
        print("no cluster is up", file=sys.stderr)
        return 1
    _print_env(current)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("build", "up", "down", "env"))
    args = parser.parse_args(argv)
    return {"build": cmd_build, "up": cmd_up, "down": cmd_down, "env": cmd_env}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
