"""The `timeout` label bounds the whole run, whatever shape the task has."""

from __future__ import annotations

import asyncio
import time

import pytest

from podiq import InMemoryBroker, TaskiqDepends, TaskTimeoutError


class SlowCallable:
    async def __call__(self) -> int:
        await asyncio.sleep(30)
        return 1


def returns_a_coroutine():
    return asyncio.sleep(30, result=1)


async def slow_dependency() -> int:
    await asyncio.sleep(30)
    return 1


async def needs_slow_dependency(value: int = TaskiqDepends(slow_dependency)) -> int:
    return value


@pytest.mark.parametrize("func", [SlowCallable(), returns_a_coroutine, needs_slow_dependency])
async def test_timeout_is_enforced(func, broker: InMemoryBroker) -> None:
    task = broker.register_task(func, f"slow.{getattr(func, '__name__', 'callable')}", timeout=0.1)
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError, match="ran longer than its timeout of 0.1 s"):
        await asyncio.wait_for((await task.kiq()).wait_result(), 5)
    assert time.monotonic() - started < 2


async def test_an_async_callable_object_runs_on_the_loop(broker: InMemoryBroker) -> None:
    class Doubler:
        async def __call__(self, x: int) -> int:
            asyncio.get_running_loop()  # raises in a pool thread
            return 2 * x

    task = broker.register_task(Doubler(), "doubler")
    assert task.is_async
    assert await (await task.kiq(4)) == 8


async def test_a_tasks_own_timeout_error_is_not_mistaken_for_its_deadline(broker: InMemoryBroker) -> None:
    @broker.task(timeout=10)
    async def gives_up() -> None:
        raise TimeoutError("upstream did not answer")

    with pytest.raises(TimeoutError, match="upstream did not answer") as caught:
        await (await gives_up.kiq())
    assert not isinstance(caught.value, TaskTimeoutError)
