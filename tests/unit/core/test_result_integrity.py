"""A result is what the task returned, checked where the run can still fail; containers never raise on waiting."""

from __future__ import annotations

import asyncio

import pytest

from podiq import AsyncTaskiqTask, InMemoryBroker, ResultGetError, ResultRecord, SerializationError, gather


async def test_a_mismatched_return_is_a_failed_run_and_gather_keeps_the_others(broker: InMemoryBroker) -> None:
    @broker.task
    async def lies() -> int:
        return "many"  # type: ignore[return-value]  # deliberately wrong, to see it refused

    @broker.task
    async def honest() -> int:
        return 7

    task = await lies.kicker().kiq()
    finished = await task.wait_result(timeout=5)  # a container: does not raise
    assert finished.is_err and isinstance(finished.error, SerializationError)
    results = await gather(lies.kiq(), honest.kiq(), timeout=5)
    assert results[0].is_err and results[1].return_value == 7


async def test_an_unreadable_stored_result_comes_back_as_a_failed_container(broker: InMemoryBroker) -> None:
    await broker.result_backend.set_result("stored", ResultRecord(return_value="not a number"))
    finished = await AsyncTaskiqTask("stored", broker, int).wait_result(timeout=5)
    assert finished.is_err
    with pytest.raises(ResultGetError, match="cannot be read as <class 'int'>"):
        finished.raise_for_error()


async def test_retries_get_the_arguments_as_sent_not_as_mutated() -> None:
    broker = InMemoryBroker()
    seen: list[list] = []

    @broker.task(retry_on_error=True, max_retries=2)
    async def consume(items, by_key) -> int:  # no annotations: values pass as JSON data
        seen.append(list(items))
        items.pop()
        by_key["extra"] = 1
        by_key["nested"].append(0)
        raise ValueError("try again")

    async with broker:
        handle = await consume.kiq([1, 2, 3], {"nested": []})
        with pytest.raises(ValueError):
            await asyncio.wait_for(handle.wait_result(), 5)
    assert seen == [[1, 2, 3]] * 3


async def test_the_callers_objects_are_not_mutated_by_the_run(broker: InMemoryBroker) -> None:
    @broker.task
    async def mutate(items: list[int]) -> int:
        items.clear()
        return 0

    mine = [1, 2]
    await (await mutate.kiq(mine))
    assert mine == [1, 2]
