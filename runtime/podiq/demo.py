"""Example tasks that `podiq demo` runs: progress, a thread-pool function, retries, a requeue,
dependencies and gather. Plain code, so it doubles as a tour of the API.

The broker is in-process unless PODIQ_DEMO_BROKER=kubernetes; the demo's TaskRuns carry that
variable, so the runtime in each pod imports this module with the same broker.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from podiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends

BROKER_VARIABLE = "PODIQ_DEMO_BROKER"


def _make_broker() -> AsyncBroker:
    if os.environ.get(BROKER_VARIABLE) == "kubernetes":
        from podiq.kubernetes.broker import KubernetesBroker

        return KubernetesBroker(image=os.environ.get("PODIQ_DEMO_IMAGE"), env={BROKER_VARIABLE: "kubernetes"})
    return InMemoryBroker()


broker = _make_broker()


@dataclass
class Report:
    name: str
    rows: int
    created: datetime


@broker.task
async def build_report(name: str, rows: int, context: Context = TaskiqDepends()) -> Report:
    """Reports progress as it goes; clients read it with get_progress()."""
    for done in range(1, rows + 1):
        await asyncio.sleep(0.02)
        await context.set_progress(done, rows, f"row {done}")
    return Report(name=name, rows=rows, created=datetime.now(UTC))


@broker.task
def count_primes(limit: int) -> int:
    """A plain function: it runs in the thread pool and never blocks the event loop."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(sieve[n * n :: n]))
    return sum(sieve)


@broker.task(retry_on_error=True, max_retries=3)
async def flaky_fetch(url: str, context: Context = TaskiqDepends()) -> str:
    """Fails twice, then succeeds: the retry policy in its labels carries it through."""
    attempts = int(context.message.labels.get("_retries", 0)) + 1
    await asyncio.sleep(0.2)
    if attempts < 3:
        raise ConnectionError(f"{url} did not answer (attempt {attempts})")
    return f"{url}: 200 OK after {attempts} attempts"


@broker.task
async def wait_for_turn(ticket: int, context: Context = TaskiqDepends()) -> str:
    """Requeues itself until its turn comes, as Context.requeue() allows."""
    requeues = int(context.message.labels.get("X-Taskiq-requeue", 0))
    await context.set_progress(requeues, ticket, f"requeued {requeues}x")
    await asyncio.sleep(0.3)
    if requeues < ticket:
        await context.requeue()
    return f"ticket {ticket} served after {requeues} requeues"


@broker.task
async def divide(a: float, b: float) -> float:
    """Raises ZeroDivisionError for b=0: the client gets that exception back, rebuilt."""
    await asyncio.sleep(0.1)
    return a / b
