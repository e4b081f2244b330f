"""InMemoryBroker's settings are checked when it is made, and its results never leave a waiter hanging."""

from __future__ import annotations

import asyncio

import pytest

from podiq import BrokerError, InMemoryBroker, InMemoryResultBackend, ResultGetError, ResultSetError, TaskiqMiddleware


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_async_tasks", 0),
        ("max_async_tasks", -2),
        ("max_async_tasks", 1.5),
        ("max_async_tasks", "4"),
        ("max_async_tasks", True),
        ("max_stored_results", "10"),
        ("max_stored_results", -2),
        ("max_stored_results", None),
        ("sync_tasks_pool_size", 0),
        ("sync_tasks_pool_size", 2.0),
        ("shutdown_timeout", -1),
        ("shutdown_timeout", float("nan")),
        ("shutdown_timeout", "5"),
    ],
)
def test_invalid_settings_are_refused_naming_them(setting: str, value) -> None:
    with pytest.raises(BrokerError, match=f"{setting}={value!r} is invalid: pass"):
        InMemoryBroker(**{setting: value})


def test_invalid_backend_limit_is_refused() -> None:
    with pytest.raises(BrokerError, match="max_stored_results='3' is invalid"):
        InMemoryResultBackend(max_stored_results="3")  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


@pytest.mark.parametrize(
    "settings",
    [
        {"max_async_tasks": 1},
        {"max_stored_results": 0},
        {"max_stored_results": -1},
        {"sync_tasks_pool_size": 1},
        {"shutdown_timeout": None},
        {"shutdown_timeout": 0},
    ],
)
def test_valid_settings_are_kept(settings: dict) -> None:
    broker = InMemoryBroker(**settings)
    for name, value in settings.items():
        if name != "sync_tasks_pool_size":
            assert (
                getattr(broker, name, None)
                if name != "max_stored_results"
                else broker.result_backend.max_stored_results
            ) == value


async def test_waiting_for_an_evicted_result_says_so() -> None:
    broker = InMemoryBroker(max_stored_results=1)

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    async with broker:
        first, second = await add.kiq(1, 1), await add.kiq(2, 2)
        await broker.wait_all()
        with pytest.raises(ResultGetError, match="max_stored_results=1 keeps only the newest.*-1 for no limit"):
            await asyncio.wait_for(first.wait_result(), 5)
        assert await second == 4


async def test_waiting_for_an_id_never_sent_fails_at_once(broker: InMemoryBroker) -> None:
    @broker.task
    async def job() -> int:
        return 1

    await (await job.kiq())  # the backend now knows which runs are under way
    from podiq import AsyncTaskiqTask

    with pytest.raises(ResultGetError, match="no run of it is under way.*never sent"):
        await asyncio.wait_for(AsyncTaskiqTask("typo", broker).wait_result(), 5)


async def test_a_failing_result_backend_still_wakes_the_waiter() -> None:
    class Full(InMemoryResultBackend):
        async def set_result(self, task_id, result):
            raise OSError("disk full")

    broker = InMemoryBroker(result_backend=Full())

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    async with broker:
        with pytest.raises(
            ResultSetError, match="could not be stored by Full: OSError: disk full.*run itself succeeded"
        ):
            await asyncio.wait_for((await add.kiq(1, 1)).wait_result(), 5)


async def test_a_backend_failing_once_stores_the_failure_instead() -> None:
    class Flaky(InMemoryResultBackend):
        calls = 0

        async def set_result(self, task_id, result):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ValueError("not JSON enough")
            await super().set_result(task_id, result)

    broker = InMemoryBroker(result_backend=Flaky())

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    async with broker:
        handle = await add.kiq(1, 1)
        with pytest.raises(ResultSetError, match="ValueError: not JSON enough"):
            await asyncio.wait_for(handle.wait_result(), 5)
        assert (await handle.task.get_result()).is_err


async def test_a_failing_post_save_does_not_lose_the_result() -> None:
    class Broken(TaskiqMiddleware):
        def post_save(self, message, result):
            raise RuntimeError("post_save broke")

    broker = InMemoryBroker().with_middlewares(Broken())

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    async with broker:
        assert await asyncio.wait_for((await add.kiq(1, 2)).wait_result(), 5) == 3
