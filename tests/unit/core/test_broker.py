"""AsyncBroker: registry, configuration, lifetime."""

from __future__ import annotations

import pytest

from podiq import (
    AsyncBroker,
    AsyncResultBackend,
    BrokerError,
    InMemoryBroker,
    InMemoryResultBackend,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqState,
)
from podiq.result_backends.dummy import DummyResultBackend


async def add(a: int, b: int) -> int:
    return a + b


def test_abstract_broker_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        AsyncBroker()  # type: ignore[abstract]  # deliberately wrong, to see it refused


async def test_broker_without_result_backend_stores_nothing_as_in_taskiq() -> None:
    class Bare(AsyncBroker):
        async def kick(self, message: TaskiqMessage) -> None:
            pass

    bare = Bare()
    assert isinstance(bare.result_backend, DummyResultBackend)

    @bare.task
    async def noop() -> None: ...

    task = await noop.kicker().kiq()
    assert await task.is_ready()
    assert (await task.wait_result()).return_value is None
    backend = InMemoryResultBackend()
    assert Bare(result_backend=backend).result_backend is backend


async def test_base_broker_cannot_cancel() -> None:
    class Bare(AsyncBroker):
        async def kick(self, message: TaskiqMessage) -> None:
            pass

    with pytest.raises(BrokerError, match="cannot cancel"):
        await Bare(result_backend=InMemoryResultBackend()).cancel("some-id")


async def test_base_broker_requeue_kicks_again() -> None:
    sent: list[TaskiqMessage] = []

    class Recording(AsyncBroker):
        async def kick(self, message: TaskiqMessage) -> None:
            sent.append(message)

    message = TaskiqMessage(task_id="1", task_name="t")
    await Recording(result_backend=InMemoryResultBackend()).requeue(message)
    assert sent == [message]


def test_inmemory_broker_defaults() -> None:
    broker = InMemoryBroker()
    assert isinstance(broker.result_backend, InMemoryResultBackend)
    assert broker.result_backend.max_stored_results == -1
    assert broker.is_worker_process is True
    assert broker.is_started is False
    assert isinstance(broker.state, TaskiqState)
    assert broker.get_all_tasks() == {}
    assert len(broker.id_generator()) == 32
    assert broker.id_generator() != broker.id_generator()


def test_find_task_and_get_all_tasks() -> None:
    broker = InMemoryBroker()
    task = broker.task(add)
    assert broker.find_task(task.task_name) is task
    assert broker.find_task("nope") is None
    tasks = broker.get_all_tasks()
    assert tasks == {task.task_name: task}
    tasks.clear()  # a copy: the registry is untouched
    assert broker.find_task(task.task_name) is task


def test_register_task_is_the_decorator_without_sugar() -> None:
    broker = InMemoryBroker()
    task = broker.register_task(add, "adder", priority=3)
    assert task.task_name == "adder"
    assert task.labels == {"priority": 3}
    assert broker.find_task("adder") is task


async def test_with_result_backend_and_id_generator() -> None:
    backend = InMemoryResultBackend()
    ids = iter(["first", "second"])
    broker = InMemoryBroker().with_result_backend(backend).with_id_generator(lambda: next(ids))
    assert broker.result_backend is backend
    task = broker.task(add)
    result = await task.kiq(1, 2)
    assert result.task_id == "first"
    assert await result == 3
    assert "first" in backend.results
    assert (await task.kiq(2, 2)).task_id == "second"
    await broker.wait_all()


async def test_task_id_generator_in_constructor() -> None:
    broker = InMemoryBroker(task_id_generator=lambda: "fixed")
    result = await broker.task(add).kiq(1, 1)
    assert result.task_id == "fixed"
    assert await result == 2


def test_with_middlewares_sets_the_broker_and_keeps_order() -> None:
    broker = InMemoryBroker()
    first, second = TaskiqMiddleware(), TaskiqMiddleware()
    assert broker.with_middlewares(first, second) is broker
    assert broker.middlewares == [first, second]
    assert first.broker is broker and second.broker is broker


def test_add_middlewares_refuses_other_objects() -> None:
    broker = InMemoryBroker()
    with pytest.raises(BrokerError, match="is not a TaskiqMiddleware"):
        broker.add_middlewares(object())  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    assert broker.middlewares == []


async def test_startup_and_shutdown_are_idempotent() -> None:
    calls: list[str] = []

    class Backend(InMemoryResultBackend):
        async def startup(self) -> None:
            calls.append("startup")

        async def shutdown(self) -> None:
            calls.append("shutdown")

    broker = InMemoryBroker(result_backend=Backend())
    await broker.shutdown()  # never started: shuts down all the same, as in taskiq
    await broker.shutdown()
    assert calls == ["shutdown"]
    calls.clear()
    await broker.startup()
    await broker.startup()
    assert broker.is_started is True
    await broker.shutdown()
    await broker.shutdown()
    assert broker.is_started is False
    assert calls == ["startup", "shutdown"]


async def test_async_with_starts_and_stops() -> None:
    broker = InMemoryBroker()
    async with broker as entered:
        assert entered is None  # as taskiq's __aenter__ gives
        assert broker.is_started is True
    assert broker.is_started is False


async def test_broker_can_be_started_again_after_shutdown() -> None:
    broker = InMemoryBroker()

    @broker.task
    def plain(x: int) -> int:
        return x * 2

    @broker.task
    async def coro(x: int) -> int:
        return x * 3

    for round_ in range(3):
        async with broker:
            assert await (await plain.kiq(round_)) == round_ * 2
            assert await (await coro.kiq(round_)) == round_ * 3


class _Backend(AsyncResultBackend):
    """The smallest backend: exercises the polling wait_for_result of the base class."""

    def __init__(self) -> None:
        self.records: dict = {}

    async def set_result(self, task_id, result):
        self.records[task_id] = result

    async def is_result_ready(self, task_id):
        return task_id in self.records

    async def get_result(self, task_id, with_logs=False):
        return self.records[task_id]

    async def set_progress(self, task_id, progress):
        pass

    async def get_progress(self, task_id):
        return None


async def test_polling_result_backend_waits_and_times_out() -> None:
    from podiq import TaskiqResultTimeoutError

    backend = _Backend()
    broker = InMemoryBroker(result_backend=backend)

    @broker.task
    async def slow() -> str:
        import asyncio

        await asyncio.sleep(0.05)
        return "done"

    assert await (await slow.kiq()).wait_result(timeout=5, check_interval=0.01) == "done"
    waiting = await slow.kicker().kiq()
    with pytest.raises(TaskiqResultTimeoutError, match="did not finish within 0.01 s"):
        await waiting.wait_result(check_interval=0.005, timeout=0.01)
    await broker.wait_all()
    assert (await waiting.wait_result(check_interval=0.005, timeout=1)).return_value == "done"
