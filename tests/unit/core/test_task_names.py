"""Every task name belongs to one function; what cannot be named gets an error saying how to name it."""

from __future__ import annotations

import functools

import pytest

from podiq import BrokerError, InMemoryBroker


def test_two_closures_of_one_factory_cannot_share_a_name() -> None:
    broker = InMemoryBroker()

    def make(n: int):
        @broker.task
        async def scaled(x: int) -> int:
            return x * n

        return scaled

    double = make(2)
    with pytest.raises(
        BrokerError, match=r"'.*:scaled' is already used by .*make.<locals>.scaled \(another function object"
    ):
        make(3)
    assert broker.find_task(double.task_name) is double


async def test_closures_with_their_own_names_run_their_own_code() -> None:
    broker = InMemoryBroker()

    def make(n: int):
        @broker.task(task_name=f"scaled_by_{n}")
        async def scaled(x: int) -> int:
            return x * n

        return scaled

    double, triple = make(2), make(3)
    async with broker:
        assert await (await double.kiq(10)) == 20
        assert await (await triple.kiq(10)) == 30


def test_two_lambdas_cannot_share_a_name() -> None:
    broker = InMemoryBroker()
    broker.task(lambda: 1)
    with pytest.raises(BrokerError, match="<lambda>"):
        broker.task(lambda: 2)


def test_a_module_level_function_made_again_replaces_itself() -> None:
    """What a reloaded module does: same module and qualified name, new function object."""
    broker = InMemoryBroker()
    namespace: dict = {"__name__": "reloaded_module"}
    exec("async def job() -> int:\n    return 1", namespace)
    first = broker.task(namespace["job"])
    exec("async def job() -> int:\n    return 2", namespace)
    again = broker.task(namespace["job"])
    assert broker.find_task(first.task_name) is again


class _Callable:
    async def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize("func", [_Callable(), functools.partial(lambda x: x, 1)])
def test_callables_without_a_name_must_be_named(func) -> None:
    broker = InMemoryBroker()
    with pytest.raises(BrokerError, match=r"has no __name__.*@broker.task\(task_name=...\)"):
        broker.task(func)
    assert broker.task("named")(func).task_name == "named"


@pytest.mark.parametrize("name", ["", "   ", 3])
def test_task_names_must_be_non_empty_strings(name) -> None:
    broker = InMemoryBroker()
    with pytest.raises(BrokerError, match="is not a non-empty string"):
        broker.register_task(lambda: 1, name)


def test_generators_are_refused_as_tasks() -> None:
    broker = InMemoryBroker()

    def numbers():
        yield 1

    async def async_numbers():
        yield 1

    for func in (numbers, async_numbers):
        with pytest.raises(BrokerError, match="generator function.*return a list"):
            broker.task(func)


def test_non_callables_are_refused() -> None:
    with pytest.raises(BrokerError, match="is not callable"):
        InMemoryBroker().register_task(42)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
