"""Tasks that only a real node can judge: they run in the runtime-tasks image on kind, as the
chart's pods (uid 10001, read-only root filesystem, memory limits enforced by the kernel)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.storage import RedisStore, StoredValue, StoreSettings

NAMESPACE = "podiq-e2e"
MEMORY_LIMIT = "64Mi"
MISSING_IMAGE = "podiq.invalid/no-such-image:1.0"

broker = KubernetesBroker(namespace=NAMESPACE)


@broker.task
async def identity() -> dict[str, object]:
    """Who the task runs as, and whether /tmp takes writes while / does not."""
    Path("/tmp/podiq-probe").write_text("written")
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "root_read_only": bool(os.statvfs("/").f_flag & os.ST_RDONLY),
        "tmp": Path("/tmp/podiq-probe").read_text(),
    }


@broker.task
async def write_outside_tmp() -> None:
    Path("/app/report.txt").write_text("not allowed")


@broker.task
async def resolve(names: list[str]) -> dict[str, list[str]]:
    """The IPv4 addresses each name resolves to in the task's pod, through the cluster's DNS."""
    loop = asyncio.get_running_loop()
    found = {}
    for name in names:
        infos = await loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        found[name] = sorted({str(info[4][0]) for info in infos})
    return found


@broker.task(retry_on_error=True, max_retries=1, resources={"limits": {"memory": MEMORY_LIMIT}})
async def eat_memory() -> None:
    """Touches memory until the kernel's OOM killer stops the container."""
    hoard = []
    while True:
        hoard.append(bytearray(8 * 1024 * 1024))
        await asyncio.sleep(0)


@broker.task(image=MISSING_IMAGE)
async def from_missing_image() -> None:
    """Never runs: its image cannot be pulled."""


@broker.task
async def slow(seconds: int) -> str:
    for step in range(seconds):
        print(f"slow: step {step}", flush=True)
        await asyncio.sleep(1)
    return f"slept {seconds}s"


@broker.task
async def chatty(lines: int) -> int:
    for n in range(lines):
        print(f"chatty line {n}", flush=True)
    return lines


@broker.task
async def digest_and_grow(text: str, size: int) -> str:
    """What a large argument arrived as (its length and sha256), then ``size`` more characters:
    a result far over what a TaskRun's status may hold."""
    return f"{len(text)}:{hashlib.sha256(text.encode()).hexdigest()}:" + "x" * size


@broker.task
async def read_stored(key: str, size: int, sha256: str) -> str:
    """Reads a stored value with this pod's own Redis user: its namespace's, from the Secret
    the operator provisions (PODIQ_REDIS_URL)."""
    async with RedisStore(StoreSettings.from_env()) as store:
        return (await store.get(StoredValue(key=key, size=size, sha256=sha256))).decode()
