"""Tasks the integration tests send as TaskRuns. The runtime in each pod imports this module
by its name (tests.integration.k8s_tasks), found through PYTHONPATH in the TaskRun's env."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

from podiq import Context, TaskiqDepends
from podiq.kubernetes.broker import KubernetesBroker

REPO_ROOT = str(Path(__file__).resolve().parents[2])

broker = KubernetesBroker(
    namespace=os.environ.get("PODIQ_TEST_NAMESPACE", "default"),
    env={"PYTHONPATH": REPO_ROOT, "PODIQ_TEST_NAMESPACE": os.environ.get("PODIQ_TEST_NAMESPACE", "default")},
)


class QuotaError(Exception):
    """A user exception with a keyword-only constructor and an attribute, rebuilt on the client."""

    def __init__(self, *, resource: str, limit: int) -> None:
        super().__init__(f"{resource} over its limit of {limit}")
        self.resource = resource
        self.limit = limit


@broker.task
async def calculate_sum(numbers: list[int]) -> int:
    await asyncio.sleep(0.2)
    return sum(numbers)


@broker.task
async def risky_operation(value: int) -> int:
    if value < 0:
        raise ValueError("Negative values not allowed")
    return value * 2


@broker.task
async def context_aware_task(data: str, context: Context = TaskiqDepends()) -> str:
    task_id = context.message.task_id
    requeue_count = context.message.labels.get("X-Taskiq-requeue", "0")
    if data == "retry_me" and int(requeue_count) < 2:
        print(f"Requeuing task {task_id} (attempt {int(requeue_count) + 1})")
        await context.requeue()
    if data == "invalid":
        context.reject()
    return f"Processed: {data} (ID: {task_id})"


@broker.task
async def fetch_data(url: str) -> dict[str, str]:
    await asyncio.sleep(random.uniform(0.1, 0.3))
    return {"url": url, "data": f"content from {url}"}


@broker.task
async def over_quota(resource: str) -> None:
    raise QuotaError(resource=resource, limit=3)


@broker.task(retry_on_error=True, max_retries=2)
async def fails_until(succeed_on_retry: int, context: Context = TaskiqDepends()) -> int:
    retries = int(context.message.labels.get("_retries", 0))
    if retries < succeed_on_retry:
        raise RuntimeError(f"failing on retry {retries}")
    return retries


@broker.task(timeout=1)
async def sleeps_too_long() -> None:
    await asyncio.sleep(60)


@broker.task
async def slow_with_progress(steps: int, delay: float, context: Context = TaskiqDepends()) -> int:
    for step in range(1, steps + 1):
        await asyncio.sleep(delay)
        await context.set_progress(step, steps, f"step {step}")
    return steps


@broker.task
def prints_and_returns(text: str) -> str:
    print(f"hello from the pod: {text}", flush=True)
    return text.upper()


@broker.task
async def noop() -> None:
    return None
