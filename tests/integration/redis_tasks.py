"""Tasks with large values, sent as TaskRuns to a namespace whose operator has Redis. The
runtime in each pod imports this module by its name, found through PYTHONPATH."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.storage import RedisStore, StoredValue, StoreSettings

REPO_ROOT = str(Path(__file__).resolve().parents[2])
NAMESPACE_ENV = "PODIQ_TEST_REDIS_NAMESPACE"

broker = KubernetesBroker(
    namespace=os.environ.get(NAMESPACE_ENV, "default"),
    env={"PYTHONPATH": REPO_ROOT, NAMESPACE_ENV: os.environ.get(NAMESPACE_ENV, "default")},
)


@broker.task
async def measure(text: str, *, factor: int = 1) -> int:
    return len(text) * factor


@broker.task
async def echo(text: str) -> str:
    return text


@broker.task
async def make_text(size: int, delay: float = 0.0) -> str:
    await asyncio.sleep(delay)
    return "x" * size


@broker.task
def shout(text: str) -> str:
    for number in range(3):
        print(f"line {number}: {text}", flush=True)
    return text.upper()


@broker.task
async def read_key(key: str) -> str:
    """Reads a key with this pod's own Redis connection (the namespace's user)."""
    async with RedisStore(StoreSettings.from_env()) as store:
        data = await store.redis.get(key)
        return "absent" if data is None else data.decode()


@broker.task
async def read_reference(key: str, size: int, sha256: str) -> str:
    async with RedisStore(StoreSettings.from_env()) as store:
        return (await store.get(StoredValue(key=key, size=size, sha256=sha256))).decode()
