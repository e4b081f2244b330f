"""Starting, waiting for and stopping the cluster's local processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """An unused 127.0.0.1 port (the usual bind-to-0 trick; the race is harmless here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PidFile:
    """Records every process group the cluster starts, so ``down`` can find them.

    Each entry keeps the command's first argument so a recycled pid is never killed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[dict]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return []

    def add(self, name: str, pid: int, exe: str) -> None:
        entries = self._load()
        entries.append({"name": name, "pid": pid, "exe": exe})
        self.path.write_text(json.dumps(entries, indent=1))

    def entries(self) -> list[dict]:
        return self._load()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int, exe: str | None = None) -> bool:
    cmd = _cmdline(pid)
    if not cmd:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        return False
    return exe is None or exe in cmd[0] or any(exe in a for a in cmd[:3])


def start(
    name: str, argv: list[str], log: Path, pids: PidFile, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``argv`` in its own session (process group), output to ``log``."""
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    pids.add(name, proc.pid, argv[0] if name != "node" else "tests.cluster.node")
    return proc


def stop_group(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid) and not _group_has_members(pid):
                return
            time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_has_members(pgid: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.2,
    died: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until true; raise with ``what`` after ``timeout`` or if ``died`` says so."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet; any error means "keep polling"
            pass
        if died is not None:
            reason = died()
            if reason:
                raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def https_get(
    url: str, *, ca: Path | None = None, cert: tuple[Path, Path] | None = None, timeout: float = 3.0
) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
