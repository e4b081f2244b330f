"""A real redis-server for the tests: 127.0.0.1, a random port, a password, no persistence.

``scripts/setup`` installs Debian's ``redis-server`` package when it is missing. The fixtures
fail (never skip) without it, so a run cannot go green without the store's tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.procs import free_port, stop_group

START_TIMEOUT = 10.0  # seconds for redis-server to answer PING


class RedisServer:
    """One redis-server process; ``url`` is the admin (default user's) URL."""

    def __init__(self, directory: Path, *, maxmemory: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not on PATH: run scripts/setup (it installs Debian's redis-server).", pytrace=False
            )
        self.binary = binary
        self.directory = directory
        self.password = secrets.token_hex(16)
        self.maxmemory = maxmemory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(3):  # another process may take the port between picking and binding
            self.port = self.port or free_port()
            args = [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--requirepass",
                self.password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--logfile",
                str(self.directory / f"redis-{self.port}.log"),
            ]
            if self.maxmemory:
                args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "allkeys-lru"]
            self.process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
            if self._wait_ready():
                return
            self.stop()
            self.port = 0
        pytest.fail(f"redis-server did not start within {START_TIMEOUT} s:\n{self.log()}", pytrace=False)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                    reply = b""
                    while b"\r\n" not in reply.partition(b"\r\n")[2]:  # both replies
                        chunk = sock.recv(64)
                        if not chunk:
                            break
                        reply += chunk
                    if b"+PONG" in reply:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted Redis."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid)
            self.process.wait(timeout=10)

    def log(self) -> str:
        path = self.directory / f"redis-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A redis-server in a directory of its own, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="podiq-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests use their own keys."""
    with running_redis() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill it."""
    with running_redis() as server:
        yield server
