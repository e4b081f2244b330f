"""Generator dependencies see how the run ended; broken dependency trees are refused when the task is declared."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from podiq import BrokerError, Context, InMemoryBroker, TaskCancelledError, TaskiqDepends

if TYPE_CHECKING:
    from decimal import Decimal


async def test_a_cancelled_run_rolls_back_instead_of_committing(broker: InMemoryBroker) -> None:
    log: list[str] = []

    async def session() -> AsyncIterator[str]:
        try:
            yield "session"
            log.append("commit")
        except BaseException as exc:
            log.append(f"rollback after {type(exc).__name__}")
            raise

    def plain_session() -> Iterator[str]:
        try:
            yield "plain"
            log.append("plain commit")
        except BaseException as exc:
            log.append(f"plain rollback after {type(exc).__name__}")
            raise

    @broker.task
    async def slow(s: str = TaskiqDepends(session), p: str = TaskiqDepends(plain_session)) -> None:
        await asyncio.sleep(60)

    handle = await slow.kiq()
    await asyncio.sleep(0.05)
    await handle.cancel()
    with pytest.raises(TaskCancelledError):
        await asyncio.wait_for(handle.wait_result(), 5)
    assert sorted(log) == ["plain rollback after CancelledError", "rollback after CancelledError"]


async def test_a_teardown_error_after_success_fails_the_run_and_says_so(broker: InMemoryBroker) -> None:
    def resource() -> Iterator[int]:
        yield 1
        raise ConnectionError("commit failed")

    @broker.task
    async def job(r: int = TaskiqDepends(resource)) -> int:
        return r

    with pytest.raises(ConnectionError, match="commit failed") as caught:
        await asyncio.wait_for((await job.kiq()).wait_result(), 5)
    assert any(
        "tearing down the dependencies" in note and "return value was discarded" for note in caught.value.__notes__
    )


def test_a_dependency_cycle_is_refused_when_declared() -> None:
    broker = InMemoryBroker()

    def first(x: int = None) -> int:  # type: ignore[assignment]  # patched for this test
        return 1

    def second(y: int = TaskiqDepends(first)) -> int:
        return 2

    first.__defaults__ = (TaskiqDepends(second),)
    with pytest.raises(BrokerError, match=r"dependency cycle: .*second -> .*first -> .*second"):

        @broker.task
        async def job(v: int = TaskiqDepends(second)) -> int:
            return v


def test_a_dependency_on_itself_is_refused() -> None:
    broker = InMemoryBroker()

    def selfish(x: int = None) -> int:  # type: ignore[assignment]  # patched for this test
        return 1

    selfish.__defaults__ = (TaskiqDepends(selfish),)
    with pytest.raises(BrokerError, match="dependency cycle"):
        broker.task(lambda v=TaskiqDepends(selfish): v)


def test_unresolvable_hints_on_a_task_with_dependencies_are_refused() -> None:
    broker = InMemoryBroker()

    async def job(amount: Decimal, context: Context = TaskiqDepends()) -> None: ...

    with pytest.raises(
        BrokerError, match=r"type hints of .*job cannot be resolved \(NameError.*Decimal.*\['context'\].*module level"
    ):
        with pytest.warns(UserWarning, match="'Decimal' of 'amount' cannot be resolved"):
            broker.task(job)


async def test_shared_dependencies_are_not_a_cycle(broker: InMemoryBroker) -> None:
    def base() -> int:
        return 1

    def left(b: int = TaskiqDepends(base)) -> int:
        return b + 1

    def right(b: int = TaskiqDepends(base)) -> int:
        return b + 2

    @broker.task
    async def job(lhs: int = TaskiqDepends(left), rhs: int = TaskiqDepends(right)) -> int:
        return lhs + rhs

    assert await (await job.kiq()) == 5


async def test_one_failing_teardown_does_not_leave_the_others_open(broker: InMemoryBroker) -> None:
    closed: list[str] = []

    def first() -> Iterator[str]:
        yield "a"
        closed.append("first")

    def failing() -> Iterator[str]:
        yield "b"
        raise ConnectionError("teardown failed")

    async def last() -> AsyncIterator[str]:
        yield "c"
        closed.append("last")

    @broker.task
    async def job(x: str = TaskiqDepends(first), y: str = TaskiqDepends(failing), z: str = TaskiqDepends(last)) -> str:
        return x + y + z

    with pytest.raises(ConnectionError, match="teardown failed"):
        await (await job.kiq())
    assert sorted(closed) == ["first", "last"]
