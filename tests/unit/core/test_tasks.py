"""@broker.task in all its forms, and the decorated task object."""

from __future__ import annotations

import inspect

import pytest

from podiq import (
    AsyncKicker,
    AsyncTaskiqDecoratedTask,
    BrokerError,
    InMemoryBroker,
    TaskiqResult,
)


async def test_bare_decorator_names_task_after_module_and_function(broker: InMemoryBroker) -> None:
    @broker.task
    async def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert isinstance(double, AsyncTaskiqDecoratedTask)
    assert double.task_name == f"{__name__}:double"
    assert double.broker is broker
    assert double.labels == {}
    assert double.__name__ == "double"
    assert double.__doc__ == "Twice x."
    assert double.__wrapped__ is double.original_func
    assert double.is_async is True
    assert double.return_type is int
    assert repr(double) == f"AsyncTaskiqDecoratedTask('{__name__}:double')"
    assert await (await double.kiq(4)) == 8


async def test_decorator_called_without_arguments(broker: InMemoryBroker) -> None:
    @broker.task()
    def triple(x: int) -> int:
        return 3 * x

    assert triple.task_name == f"{__name__}:triple"
    assert triple.is_async is False
    assert await (await triple.kiq(2)) == 6


async def test_decorator_with_positional_name_and_labels(broker: InMemoryBroker) -> None:
    @broker.task("custom.name", priority=5, team="data")
    async def named() -> str:
        return "ok"

    assert named.task_name == "custom.name"
    assert named.labels == {"priority": 5, "team": "data"}
    assert broker.find_task("custom.name") is named
    result = await named.kiq()
    assert await result == "ok"
    assert result.labels == {"priority": 5, "team": "data"}


async def test_decorator_with_task_name_keyword(broker: InMemoryBroker) -> None:
    @broker.task(task_name="by_keyword")
    async def something() -> int:
        return 1

    assert something.task_name == "by_keyword"
    assert broker.find_task("by_keyword") is something


def test_same_name_for_another_function_is_refused() -> None:
    broker = InMemoryBroker()

    @broker.task("shared")
    async def first() -> int:
        return 1

    with pytest.raises(BrokerError, match="'shared' is already used by .*first.*task_name"):

        @broker.task("shared")
        async def second() -> int:
            return 2

    assert broker.find_task("shared") is first


def test_registering_the_same_function_again_is_allowed() -> None:
    broker = InMemoryBroker()

    async def job() -> int:
        return 1

    first = broker.task(job)
    again = broker.task(job)
    assert again.task_name == first.task_name
    assert broker.find_task(first.task_name) is again


def test_same_function_name_on_two_brokers_is_independent() -> None:
    one, two = InMemoryBroker(), InMemoryBroker()

    async def job() -> int:
        return 1

    assert one.task(job).broker is one
    assert two.task(job).broker is two


async def test_local_call_runs_the_function_directly() -> None:
    broker = InMemoryBroker()
    calls: list[int] = []

    @broker.task
    async def coro(x: int) -> int:
        calls.append(x)
        return x + 1

    @broker.task
    def plain(x: int) -> int:
        calls.append(x)
        return x - 1

    pending = coro(1)
    assert inspect.iscoroutine(pending)
    assert await pending == 2
    assert plain(10) == 9
    assert calls == [1, 10]
    # nothing was sent
    assert broker.result_backend.results == {}


def test_local_call_raises_directly() -> None:
    broker = InMemoryBroker()

    @broker.task
    def fails() -> None:
        raise LookupError("local")

    with pytest.raises(LookupError, match="local"):
        fails()


def test_local_call_does_not_convert_arguments() -> None:
    broker = InMemoryBroker()

    @broker.task
    def identity(value: int) -> int:
        return value

    assert identity("not converted") == "not converted"  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


async def test_kiq_returns_a_taskiq_result_handle(broker: InMemoryBroker) -> None:
    @broker.task
    async def one() -> int:
        return 1

    result = await one.kiq()
    assert isinstance(result, TaskiqResult)
    assert isinstance(result.task_id, str) and result.task_id
    assert result.task.task_id == result.task_id
    assert await result == 1


async def test_kicker_is_fresh_each_time(broker: InMemoryBroker) -> None:
    @broker.task(priority=1)
    async def job() -> int:
        return 1

    kicker = job.kicker()
    assert isinstance(kicker, AsyncKicker)
    assert kicker.task_name == job.task_name
    assert kicker.broker is broker
    assert kicker.return_type is int
    kicker.with_labels(priority=9)
    assert job.labels == {"priority": 1}
    assert job.kicker().labels == {"priority": 1}


async def test_sync_task_returning_a_coroutine_is_awaited(broker: InMemoryBroker) -> None:
    async def inner() -> int:
        return 7

    @broker.task
    def returns_coroutine():
        return inner()

    assert await (await returns_coroutine.kiq()) == 7


async def test_var_positional_and_keyword_arguments(broker: InMemoryBroker) -> None:
    @broker.task
    async def collect(first: int, *rest: int, **named: str) -> dict:
        return {"first": first, "rest": list(rest), "named": named}

    result = await collect.kiq(1, 2, 3, a="x", b="y")
    assert await result == {"first": 1, "rest": [2, 3], "named": {"a": "x", "b": "y"}}


async def test_task_without_annotations_passes_json_values(broker: InMemoryBroker) -> None:
    @broker.task
    async def untyped(value):
        return value

    assert await (await untyped.kiq({"a": [1, 2.5, None, True]})) == {"a": [1, 2.5, None, True]}
    # a tuple becomes a list on the way, as JSON has no tuples
    assert await (await untyped.kiq((1, 2))) == [1, 2]
