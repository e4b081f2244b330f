"""InMemoryBroker and InMemoryResultBackend: concurrency, limits, cancel, storage, waiting."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from podiq import (
    AsyncKicker,
    InMemoryBroker,
    InMemoryResultBackend,
    ResultGetError,
    ResultRecord,
    TaskCancelledError,
    TaskiqResultTimeoutError,
    TaskProgress,
    UnknownTaskError,
)


async def test_async_tasks_run_concurrently(broker: InMemoryBroker) -> None:
    @broker.task
    async def nap() -> None:
        await asyncio.sleep(0.2)

    started = time.monotonic()
    results = [await nap.kiq() for _ in range(10)]
    for result in results:
        await result.wait_result(timeout=5)
    assert time.monotonic() - started < 1.0  # ten 0.2 s naps, not 2 s


async def test_sync_tasks_run_in_the_pool_without_blocking_the_loop(broker: InMemoryBroker) -> None:
    threads: list[str] = []

    @broker.task
    def blocking() -> str:
        threads.append(threading.current_thread().name)
        time.sleep(0.3)
        return "slept"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    results = [await blocking.kiq() for _ in range(3)]
    values = [await result.wait_result(timeout=5) for result in results]
    elapsed = time.monotonic() - started
    ticking.cancel()
    assert values == ["slept"] * 3
    assert all(name.startswith("podiq-sync") for name in threads)
    assert threading.main_thread().name not in threads
    assert ticks >= 10  # the loop kept running while the functions slept
    assert elapsed < 0.85  # three 0.3 s sleeps ran in parallel threads


async def test_sync_tasks_pool_size_bounds_threads() -> None:
    broker = InMemoryBroker(sync_tasks_pool_size=1)
    active = 0
    most = 0
    lock = threading.Lock()

    @broker.task
    def work() -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    async with broker:
        for result in [await work.kiq() for _ in range(4)]:
            await result.wait_result(timeout=5)
    assert most == 1


async def test_contextvars_are_visible_in_sync_tasks(broker: InMemoryBroker) -> None:
    import contextvars

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    request_id.set("req-42")

    @broker.task
    def read_var() -> str:
        return request_id.get()

    assert await (await read_var.kiq()) == "req-42"


def counted(broker: InMemoryBroker):
    """A task that records how many of its runs execute at once (`most`)."""
    gauge = {"running": 0, "most": 0}

    @broker.task
    async def work(i: int) -> int:
        gauge["running"] += 1
        gauge["most"] = max(gauge["most"], gauge["running"])
        await asyncio.sleep(0.01)
        gauge["running"] -= 1
        return i

    return work, gauge


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_async_tasks_is_honoured(limit: int) -> None:
    broker = InMemoryBroker(max_async_tasks=limit)
    work, gauge = counted(broker)

    async with broker:
        results = [await work.kiq(i) for i in range(10)]
        assert [await result.wait_result(timeout=5) for result in results] == list(range(10))
    assert gauge["most"] == limit


@pytest.mark.parametrize("limit", [1, 2])
async def test_runs_waiting_for_their_subtasks_do_not_deadlock_the_limit(limit: int) -> None:
    broker = InMemoryBroker(max_async_tasks=limit)
    child, gauge = counted(broker)

    @broker.task
    async def parent(x: int) -> int:
        handles = [await child.kiq(x) for _ in range(3)]
        return sum(await asyncio.gather(*(h.wait_result() for h in handles)))

    async with broker:
        parents = [await parent.kiq(i) for i in range(4)]
        assert [await asyncio.wait_for(p.wait_result(), 5) for p in parents] == [0, 3, 6, 9]
    assert gauge["most"] <= limit  # the limit still holds for runs that execute


def test_max_async_tasks_works_on_a_second_event_loop() -> None:
    broker = InMemoryBroker(max_async_tasks=1)

    @broker.task
    async def work(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    async def run_some() -> list[int]:
        results = [await work.kiq(i) for i in range(3)]
        return [await result.wait_result(timeout=5) for result in results]

    assert asyncio.run(run_some()) == [0, 1, 2]
    assert asyncio.run(run_some()) == [0, 1, 2]


async def test_wait_all_waits_for_runs_and_the_runs_they_send(broker: InMemoryBroker) -> None:
    done: list[str] = []

    @broker.task
    async def child() -> None:
        await asyncio.sleep(0.05)
        done.append("child")

    @broker.task
    async def parent() -> None:
        await child.kiq()
        done.append("parent")

    await parent.kiq()
    await broker.wait_all()
    assert sorted(done) == ["child", "parent"]
    assert broker._running == {}


async def test_shutdown_waits_for_running_tasks() -> None:
    broker = InMemoryBroker()
    done: list[int] = []

    @broker.task
    async def slow() -> None:
        await asyncio.sleep(0.05)
        done.append(1)

    await broker.startup()
    await slow.kiq()
    await broker.shutdown()
    assert done == [1]


async def test_cancel_gives_a_task_cancelled_error(broker: InMemoryBroker) -> None:
    cleaned: list[str] = []

    @broker.task
    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally")

    task = await forever.kicker().kiq()
    await asyncio.sleep(0.01)
    await task.cancel()
    finished = await task.wait_result(timeout=5)
    assert finished.is_err is True
    assert isinstance(finished.error, TaskCancelledError)
    assert str(finished.error) == f"Task {task.task_id} was cancelled."
    assert cleaned == ["finally"]


async def test_cancel_before_it_starts_and_cancel_unknown_id(broker: InMemoryBroker) -> None:
    @broker.task
    async def quick() -> int:
        return 1

    result = await quick.kiq()
    await result.cancel()  # before the loop ever ran it
    with pytest.raises(TaskCancelledError):
        await result
    await broker.cancel("no-such-id")  # nothing to cancel: no error


async def test_cancel_a_finished_run_keeps_its_result(broker: InMemoryBroker) -> None:
    @broker.task
    async def quick() -> int:
        return 1

    result = await quick.kiq()
    assert await result == 1
    await result.cancel()
    assert (await result.task.get_result()).return_value == 1


async def test_unknown_task_is_refused_at_kiq(broker: InMemoryBroker) -> None:
    with pytest.raises(UnknownTaskError, match="no task named 'not.registered' is registered on this InMemoryBroker"):
        await AsyncKicker("not.registered", broker, {}).kiq()


async def test_unknown_task_in_a_message_run_directly_is_an_error_result(broker: InMemoryBroker) -> None:
    from podiq import TaskiqMessage

    record = await broker.receiver.run(TaskiqMessage(task_id="x", task_name="ghost"))
    assert record is not None and record.is_err is True
    assert record.error is not None and record.error.type == "UnknownTaskError"
    assert "ghost" in record.error.message


async def test_max_stored_results_evicts_the_oldest() -> None:
    broker = InMemoryBroker(max_stored_results=2)

    @broker.task
    async def echo(x: int) -> int:
        return x

    async with broker:
        tasks = []
        for i in range(3):
            task = await echo.kicker().kiq(i)
            await task.wait_result(timeout=5)
            tasks.append(task)
        assert list(broker.result_backend.results) == [tasks[1].task_id, tasks[2].task_id]
        assert await tasks[0].is_ready() is False
        with pytest.raises(ResultGetError):
            await tasks[0].get_result()
        assert (await tasks[2].get_result()).return_value == 2


async def test_max_stored_results_zero_keeps_nothing_but_wakes_waiters() -> None:
    broker = InMemoryBroker(max_stored_results=0)

    @broker.task
    async def echo(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    async with broker:
        result = await echo.kiq(5)
        assert await result.wait_result(timeout=5) == 5
        assert broker.result_backend.results == {}


async def test_a_result_wakes_its_waiter_promptly_despite_check_interval(broker: InMemoryBroker) -> None:
    @broker.task
    async def short() -> str:
        await asyncio.sleep(0.05)
        return "ready"

    task = await short.kicker().kiq()
    started = time.monotonic()
    finished = await task.wait_result(check_interval=5, timeout=10)
    assert finished.return_value == "ready"
    assert time.monotonic() - started < 0.5

    handle = await short.kiq()
    started = time.monotonic()
    assert await handle.wait_result(check_interval=5) == "ready"
    assert time.monotonic() - started < 0.5


async def test_several_waiters_on_one_result(broker: InMemoryBroker) -> None:
    @broker.task
    async def short() -> int:
        await asyncio.sleep(0.02)
        return 3

    task = await short.kicker().kiq()
    results = await asyncio.gather(*(task.wait_result(timeout=5) for _ in range(5)))
    assert [r.return_value for r in results] == [3] * 5
    assert broker.result_backend._waiters == {}


async def test_backend_timeout_cleans_up_its_waiter() -> None:
    backend = InMemoryResultBackend()
    with pytest.raises(TaskiqResultTimeoutError, match="Task t1 did not finish within 0.01 s"):
        await backend.wait_for_result("t1", timeout=0.01)
    assert backend._waiters == {}
    await backend.set_result("t1", ResultRecord(return_value=1))
    assert (await backend.wait_for_result("t1", timeout=0.01)).return_value == 1


async def test_backend_progress_and_results() -> None:
    backend = InMemoryResultBackend()
    assert await backend.get_progress("t") is None
    await backend.set_progress("t", TaskProgress(1, 2))
    assert await backend.get_progress("t") == TaskProgress(1, 2)
    assert await backend.is_result_ready("t") is False
    with pytest.raises(ResultGetError, match="No result for task t"):
        await backend.get_result("t")
    record = ResultRecord(return_value="v", execution_time=0.1, labels={"a": "b"})
    await backend.set_result("t", record)
    assert await backend.is_result_ready("t") is True
    assert await backend.get_result("t", with_logs=True) == record
    assert await backend.get_progress("t") == TaskProgress(1, 2)  # kept with the result, as taskiq keeps it
    backend.expect("t")  # a new run under the same id starts without the old run's progress
    assert await backend.get_progress("t") is None


async def test_progress_is_dropped_with_its_result() -> None:
    backend = InMemoryResultBackend(max_stored_results=1)
    for task_id in ("old", "new"):
        await backend.set_progress(task_id, TaskProgress(1, 1))
        await backend.set_result(task_id, ResultRecord(return_value=task_id))
    assert await backend.get_progress("old") is None  # its result was dropped by max_stored_results
    assert await backend.get_progress("new") == TaskProgress(1, 1)


async def test_same_task_id_twice_overwrites(broker: InMemoryBroker) -> None:
    @broker.task
    async def echo(x: int) -> int:
        return x

    first = await echo.kicker().with_task_id("same").kiq(1)
    assert (await first.wait_result(timeout=5)).return_value == 1
    second = await echo.kicker().with_task_id("same").kiq(2)
    await broker.wait_all()
    assert (await second.get_result()).return_value == 2
