"""Dependency injection: Context, TaskiqState, user dependencies, teardown, overrides."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Annotated

import pytest

from podiq import Context, InMemoryBroker, InvalidArgumentsError, TaskiqDepends, TaskiqState


class Database:
    def __init__(self, url: str) -> None:
        self.url = url


async def test_context_and_state_are_injected(broker: InMemoryBroker) -> None:
    broker.state.name = "worker-1"

    @broker.task
    async def both(context: Context = TaskiqDepends(), state: TaskiqState = TaskiqDepends()) -> list[str]:
        return [context.message.task_name, state.name]

    assert await (await both.kiq()) == [both.task_name, "worker-1"]


async def test_user_dependency_function(broker: InMemoryBroker) -> None:
    def get_prefix() -> str:
        return "pre"

    def get_greeting(prefix: str = TaskiqDepends(get_prefix)) -> str:
        return f"{prefix}-hello"

    @broker.task
    async def greet(name: str, greeting: str = TaskiqDepends(get_greeting)) -> str:
        return f"{greeting} {name}"

    assert await (await greet.kiq("bob")) == "pre-hello bob"


async def test_dependency_can_use_context(broker: InMemoryBroker) -> None:
    def task_id_of(context: Context = TaskiqDepends()) -> str:
        return context.message.task_id

    @broker.task
    def sync_task(task_id: str = TaskiqDepends(task_id_of)) -> str:
        return task_id

    result = await sync_task.kiq()
    assert await result == result.task_id


async def test_generator_teardown_runs_after_the_task(broker: InMemoryBroker) -> None:
    events: list[str] = []

    def resource() -> Generator[str, None, None]:
        events.append("setup")
        yield "resource"
        events.append("teardown")

    async def async_resource() -> AsyncGenerator[str, None]:
        events.append("async setup")
        yield "async resource"
        events.append("async teardown")

    @broker.task
    async def uses(one: str = TaskiqDepends(resource), two: str = TaskiqDepends(async_resource)) -> list[str]:
        events.append("task")
        return [one, two]

    assert await (await uses.kiq()) == ["resource", "async resource"]
    assert events.index("task") > events.index("setup")
    assert events.index("task") > events.index("async setup")
    assert events.index("teardown") > events.index("task")
    assert events.index("async teardown") > events.index("task")
    assert sorted(events) == sorted(["setup", "async setup", "task", "teardown", "async teardown"])


async def test_generator_teardown_sees_the_task_exception(broker: InMemoryBroker) -> None:
    seen: list[BaseException] = []

    def resource() -> Generator[int, None, None]:
        try:
            yield 1
        except Exception as exc:  # the task's error is thrown into the generator
            seen.append(exc)
            raise

    @broker.task
    async def fails(value: int = TaskiqDepends(resource)) -> None:
        raise ArithmeticError("bad math")

    with pytest.raises(ArithmeticError, match="bad math"):
        await (await fails.kiq())
    assert len(seen) == 1 and isinstance(seen[0], ArithmeticError)


async def test_add_dependency_context(broker: InMemoryBroker) -> None:
    database = Database("sqlite://")
    broker.add_dependency_context({Database: database})
    seen: list[Database] = []

    @broker.task
    async def query(db: Database = TaskiqDepends()) -> str:
        seen.append(db)
        return db.url

    assert await (await query.kiq()) == "sqlite://"
    assert seen == [database]
    assert broker.custom_dependency_context == {Database: database}


async def test_dependency_overrides(broker: InMemoryBroker) -> None:
    def real_clock() -> str:
        return "real"

    def fake_clock() -> str:
        return "fake"

    @broker.task
    async def what_time(clock: str = TaskiqDepends(real_clock)) -> str:
        return clock

    assert await (await what_time.kiq()) == "real"
    broker.dependency_overrides[real_clock] = fake_clock
    assert await (await what_time.kiq()) == "fake"


async def test_passing_an_injected_parameter_is_refused(broker: InMemoryBroker) -> None:
    @broker.task
    async def needs_context(x: int, context: Context = TaskiqDepends()) -> int:
        return x

    with pytest.raises(InvalidArgumentsError, match=r"\['context'\] are filled by dependency injection"):
        await needs_context.kiq(1, context="mine")
    with pytest.raises(InvalidArgumentsError, match=r"\['context'\] are filled by dependency injection"):
        await needs_context.kiq(1, "mine")  # positionally, too
    assert broker.result_backend.results == {}


async def test_failing_dependency_fails_the_run(broker: InMemoryBroker) -> None:
    def broken() -> int:
        raise ConnectionError("no database")

    @broker.task
    async def uses(value: int = TaskiqDepends(broken)) -> int:
        return value

    with pytest.raises(ConnectionError, match="no database"):
        await (await uses.kiq())


async def test_dependencies_are_resolved_per_run(broker: InMemoryBroker) -> None:
    counter = iter(range(100))

    def next_number() -> int:
        return next(counter)

    @broker.task
    async def number(n: int = TaskiqDepends(next_number)) -> int:
        return n

    assert [await (await number.kiq()) for _ in range(3)] == [0, 1, 2]


async def test_annotated_dependencies_are_injected_even_before_positional_parameters(broker: InMemoryBroker) -> None:
    @broker.task
    async def describe(
        context: Annotated[Context, TaskiqDepends()], x: int, state: Annotated[TaskiqState, TaskiqDepends()]
    ) -> str:
        return f"{context.message.task_id}:{x + 1}:{type(state).__name__}"

    by_position = await describe.kicker().with_task_id("t1").kiq(41)
    by_name = await describe.kicker().with_task_id("t2").kiq(x=1)
    assert (await by_position.wait_result()).return_value == "t1:42:TaskiqState"
    assert (await by_name.wait_result()).return_value == "t2:2:TaskiqState"
    with pytest.raises(InvalidArgumentsError, match="too many positional arguments"):
        await describe.kiq(1, 2)
    with pytest.raises(InvalidArgumentsError, match=r"\['context'\] are filled by dependency injection"):
        await describe.kiq(x=1, context=None)
