"""Tasks of the TaskPool tests: they run on the warm workers of pool "fast", which import this
module by its name (found through the pool's PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from podiq.kubernetes.broker import KubernetesBroker

REPO_ROOT = str(Path(__file__).resolve().parents[2])
NAMESPACE_ENV = "PODIQ_TEST_POOL_NAMESPACE"
POOL = "fast"

broker = KubernetesBroker(namespace=os.environ.get(NAMESPACE_ENV, "default"))


@broker.task(pool=POOL)
async def add(a: int, b: int) -> int:
    return a + b


@broker.task(pool=POOL)
async def noop() -> None:
    return None


@broker.task(pool=POOL)
async def where() -> str:
    """The worker pod that ran it."""
    return os.environ.get("PODIQ_POD_NAME", "")


@broker.task(pool=POOL, retry_on_error=True, max_retries=2)
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return os.environ.get("PODIQ_POD_NAME", "")


@broker.task(pool=POOL)
async def fail(text: str) -> None:
    raise ValueError(text)


@broker.task  # no pool: a Job, as before
async def in_a_job() -> str:
    return os.environ.get("PODIQ_JOB_NAME", "")
