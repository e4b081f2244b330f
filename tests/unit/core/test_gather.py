"""gather(): tasks, handles and un-awaited kiq() calls, in input order (rule 3)."""

from __future__ import annotations

import asyncio
import time

import pytest

from podiq import InMemoryBroker, TaskiqResult, TaskiqResultTimeoutError, gather


@pytest.fixture
def tasks(broker: InMemoryBroker):
    @broker.task
    async def after(delay: float, value: str) -> str:
        await asyncio.sleep(delay)
        return value

    @broker.task
    async def fails(message: str) -> None:
        raise RuntimeError(message)

    return after, fails


async def test_async_taskiq_tasks_in_input_order(tasks) -> None:
    after, _ = tasks
    started = time.monotonic()
    sent = [await after.kicker().kiq(0.1 - i * 0.03, f"v{i}") for i in range(3)]
    results = await gather(*sent)
    assert isinstance(results, tuple)
    assert [r.return_value for r in results] == ["v0", "v1", "v2"]
    assert all(isinstance(r, TaskiqResult) and r.is_err is False for r in results)
    assert time.monotonic() - started < 0.5  # waited together, not one after another


async def test_taskiq_result_handles_are_filled(tasks) -> None:
    after, _ = tasks
    handles = [await after.kiq(0.01, "a"), await after.kiq(0.0, "b")]
    results = await gather(*handles)
    assert results[0] is handles[0] and results[1] is handles[1]
    assert handles[0].return_value == "a" and handles[1].return_value == "b"


async def test_unawaited_kiq_calls(tasks) -> None:
    after, _ = tasks
    results = await gather(after.kiq(0.02, "x"), after.kicker().kiq(0.0, "y"))
    assert [r.return_value for r in results] == ["x", "y"]


async def test_mixed_inputs_and_finished_containers(tasks) -> None:
    after, _ = tasks
    handle = await after.kiq(0.0, "handle")
    task = await after.kicker().kiq(0.0, "task")
    finished = TaskiqResult(return_value="container")
    awaited = await after.kiq(0.0, "awaited")
    assert await awaited == "awaited"
    results = await gather(after.kiq(0.01, "coroutine"), handle, task, finished, awaited)
    assert [r.return_value for r in results] == ["coroutine", "handle", "task", "container", "awaited"]
    assert results[3] is finished


async def test_errors_are_returned_not_raised(tasks) -> None:
    after, fails = tasks
    results = await gather(fails.kiq("first"), after.kiq(0.0, "ok"), fails.kicker().kiq("second"))
    assert [r.is_err for r in results] == [True, False, True]
    assert str(results[0].error) == "first" and isinstance(results[0].error, RuntimeError)
    assert str(results[2].error) == "second"
    with pytest.raises(RuntimeError, match="second"):
        results[2].raise_for_error()


async def test_timeout_raises(tasks) -> None:
    after, _ = tasks
    started = time.monotonic()
    with pytest.raises(TaskiqResultTimeoutError, match=r"gather\(\) waited 0.05 s"):
        await gather(after.kiq(0.0, "quick"), after.kiq(0.4, "slow"), timeout=0.05)
    assert time.monotonic() - started < 1.0


async def test_empty_gather() -> None:
    assert await gather() == ()


async def test_periodicity_and_with_logs_are_accepted(tasks) -> None:
    after, _ = tasks
    results = await gather(after.kicker().kiq(0.0, "p"), periodicity=5, with_logs=True, timeout=2)
    assert results[0].return_value == "p"


async def test_gather_of_a_handle_whose_result_was_evicted() -> None:
    broker = InMemoryBroker(max_stored_results=1)

    @broker.task
    async def echo(x: int) -> int:
        return x

    async with broker:
        first = await echo.kiq(1)
        assert await first == 1
        assert await (await echo.kiq(2)) == 2  # evicts the first result
        results = await gather(first, timeout=1)
    assert results[0].return_value == 1
