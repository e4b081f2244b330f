"""A task id names one run at a time: a new run under an old id waits for its own result."""

from __future__ import annotations

import asyncio

import pytest

from podiq import Context, InMemoryBroker, SendTaskError, TaskiqDepends


async def test_a_reused_task_id_gives_the_new_runs_result(broker: InMemoryBroker) -> None:
    @broker.task
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    first = await add.kicker().with_task_id("job-42").kiq(1, 1)
    assert (await first.wait_result(timeout=5)).return_value == 2
    second = await add.kicker().with_task_id("job-42").kiq(100, 100)
    assert (await second.wait_result(timeout=5)).return_value == 200


async def test_a_task_id_in_flight_cannot_be_sent_again(broker: InMemoryBroker) -> None:
    release = asyncio.Event()

    @broker.task
    async def held(x: int) -> int:
        await release.wait()
        return x

    first = await held.kicker().with_task_id("busy").kiq(1)
    with pytest.raises(SendTaskError, match="'busy' is already in use by a run that has not finished.*another id"):
        await held.kicker().with_task_id("busy").kiq(2)
    release.set()
    assert (await first.wait_result(timeout=5)).return_value == 1
    again = await held.kicker().with_task_id("busy").kiq(3)
    assert (await again.wait_result(timeout=5)).return_value == 3


async def test_requeue_keeps_its_task_id(broker: InMemoryBroker) -> None:
    @broker.task
    async def once_more(context: Context = TaskiqDepends()) -> int:
        count = int(context.message.labels.get("X-Taskiq-requeue", 0))
        if count < 2:
            await context.requeue()
        return count

    assert await (await once_more.kiq()).wait_result(timeout=5) == 2
