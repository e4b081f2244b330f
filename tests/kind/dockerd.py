"""The Docker engine for the kind tier: installed from Debian's packages when missing, started
with the runc wrapper as its default runtime, stopped again by whoever started it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import steps
from .paths import run_dir
from .steps import KindError

# Commands the tier needs from the host, and the Debian package that brings each.
APT_PACKAGES = {"dockerd": "docker.io", "runc": "runc", "debootstrap": "debootstrap", "iptables": "iptables"}
RUNTIME_NAME = "podiq-runc"


def ensure_packages() -> None:
    missing = sorted(
        {pkg for cmd, pkg in APT_PACKAGES.items() if shutil.which(cmd) is None and not Path("/usr/sbin", cmd).exists()}
    )
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise KindError(
            f"missing packages {', '.join(missing)}: install them (apt-get install {' '.join(missing)}); "
            "the kind tier installs them itself only as root on Debian"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with steps.timed(f"apt-get install {' '.join(missing)}"):
        steps.run(["apt-get", "update", "-qq"], timeout=600, env=env)
        steps.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=1200, env=env)


class Engine:
    """dockerd with the wrapper as default runtime; ``started`` says whether this process owns it."""

    def __init__(self) -> None:
        self.state = run_dir() / "dockerd"
        self.pidfile = self.state / "dockerd.pid"
        self.started = False

    def running(self) -> bool:
        if shutil.which("docker") is None:
            return False
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0

    def default_runtime(self) -> str:
        return subprocess.run(
            ["docker", "info", "--format", "{{.DefaultRuntime}}"], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    def start(self) -> None:
        ensure_packages()
        if self.running():
            runtime = self.default_runtime()
            if runtime != RUNTIME_NAME:
                raise KindError(
                    f"a Docker engine is already running with default runtime {runtime!r}; the kind "
                    f"nodes need {RUNTIME_NAME!r} (see tests/kind/README.md): stop it or configure it so"
                )
            return
        self.state.mkdir(parents=True, exist_ok=True)
        config = {
            "runtimes": {RUNTIME_NAME: {"path": str(steps.local_program("runcwrap"))}},
            "default-runtime": RUNTIME_NAME,
            "storage-driver": "overlay2",
            # Nothing can be pulled here; say so at once instead of retrying.
            "max-download-attempts": 1,
        }
        (self.state / "daemon.json").write_text(json.dumps(config, indent=2))
        log = (self.state / "dockerd.log").open("ab")
        proc = subprocess.Popen(
            ["dockerd", "--config-file", str(self.state / "daemon.json"), "--pidfile", str(self.pidfile)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self.running():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = (self.state / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
                raise KindError("dockerd did not come up within 60s:\n  " + "\n  ".join(tail))
            time.sleep(0.5)
        self.started = True

    def stop(self) -> None:
        """Stops the dockerd this tier started (found by its pid file), waiting up to 60s."""
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, and not a zombie: a dockerd this process started stays one until reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
