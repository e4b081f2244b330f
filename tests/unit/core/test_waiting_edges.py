"""Edge values of waiting: timeout 0 counts what has finished, nonsense timeouts are refused, and loops end."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC

import pytest

from podiq import (
    Context,
    InMemoryBroker,
    InvalidArgumentsError,
    SerializationError,
    TaskiqDepends,
    TaskiqResultTimeoutError,
    TaskRejectedError,
    gather,
)


@pytest.fixture
def tasks(broker: InMemoryBroker):
    @broker.task
    async def quick(x: int) -> int:
        return x

    @broker.task
    async def slow() -> None:
        await asyncio.sleep(30)

    return quick, slow


async def test_gather_with_timeout_zero_returns_what_has_finished(tasks, broker: InMemoryBroker) -> None:
    quick, _ = tasks
    handles = [await quick.kiq(i) for i in range(3)]
    await broker.wait_all()
    results = await gather(*handles, timeout=0)
    assert [r.return_value for r in results] == [0, 1, 2]


async def test_gather_with_timeout_zero_on_a_running_task_times_out_at_once(tasks, broker: InMemoryBroker) -> None:
    quick, slow = tasks
    running = await slow.kiq()
    with pytest.raises(TaskiqResultTimeoutError, match="1 of 2 tasks had not finished"):
        await asyncio.wait_for(gather(quick.kiq(1), running, timeout=0), 2)
    await running.cancel()


@pytest.mark.parametrize("timeout", [None, -1, -0.5, float("inf")])
async def test_no_limit_spellings(tasks, timeout) -> None:
    quick, _ = tasks
    assert [r.return_value for r in await gather(quick.kiq(5), timeout=timeout)] == [5]
    assert await (await quick.kiq(6)).wait_result(timeout=timeout) == 6


@pytest.mark.parametrize("timeout", [float("nan"), "1", True, [1]])
async def test_nonsense_timeouts_are_refused(tasks, timeout) -> None:
    quick, _ = tasks
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the un-awaited kiq() passed to gather is closed, not leaked
        with pytest.raises(InvalidArgumentsError, match="gather\\(\\): timeout=.* is not a number of seconds"):
            await gather(quick.kiq(1), timeout=timeout)
    handle = await quick.kiq(2)
    with pytest.raises(InvalidArgumentsError, match="wait_result\\(\\): timeout="):
        await handle.wait_result(timeout=timeout)
    with pytest.raises(InvalidArgumentsError, match="AsyncTaskiqTask.wait_result\\(\\): timeout="):
        await handle.task.wait_result(timeout=timeout)


async def test_a_requeue_loop_ends_after_max_requeues(broker: InMemoryBroker) -> None:
    @broker.task(max_requeues=5)
    async def never_ready(context: Context = TaskiqDepends()) -> None:
        await context.requeue()

    with pytest.raises(TaskRejectedError, match="requeued again after 5 requeues, its max_requeues label"):
        await asyncio.wait_for((await never_ready.kiq()).wait_result(), 5)


async def test_requeues_are_bounded_by_default(broker: InMemoryBroker) -> None:
    @broker.task
    async def never_ready(context: Context = TaskiqDepends()) -> None:
        await context.requeue()

    with pytest.raises(TaskRejectedError, match="after 100 requeues"):
        await asyncio.wait_for((await never_ready.kiq()).wait_result(), 10)


@pytest.mark.parametrize("value", [object(), {"k": object()}, [1, object()], "\ud800"])
def test_labels_that_cannot_travel_as_json_are_refused(value) -> None:
    broker = InMemoryBroker()
    with pytest.raises(SerializationError, match="Label 'extra'"):
        broker.task("labelled", extra=value)(lambda: None)

    task = broker.task("plain")(lambda: None)
    with pytest.raises(SerializationError, match="Label 'extra'"):
        task.kicker().with_labels(extra=value)


def test_json_labels_are_accepted() -> None:
    from datetime import datetime

    # Values that convert to JSON are fine, as a KubernetesBroker's not_before datetime is.
    task = InMemoryBroker().task(
        "ok", team="ops", weights=[1, 2.5], meta={"a": None, "b": [True]}, at=datetime(2030, 1, 1, tzinfo=UTC)
    )(lambda: None)
    assert task.labels["meta"] == {"a": None, "b": [True]}
