"""Exceptions that asyncio treats specially end the run as failed and leave everything else running."""

from __future__ import annotations

import asyncio
import sys

import pytest

from podiq import InMemoryBroker, RemoteTaskError


async def test_stop_iteration_in_a_plain_task_fails_the_run(broker: InMemoryBroker) -> None:
    @broker.task
    def first(xs: list[int]) -> int:
        return next(iter(xs))

    result = await first.kiq([])
    with pytest.raises(RuntimeError, match="first raised StopIteration"):
        await asyncio.wait_for(result.wait_result(), 5)
    assert await (await first.kiq([7])) == 7


async def test_stop_iteration_in_an_async_task_fails_the_run(broker: InMemoryBroker) -> None:
    @broker.task
    async def first(xs: list[int]) -> int:
        return next(iter(xs))

    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for((await first.kiq([])).wait_result(), 5)


async def test_wait_all_and_shutdown_return_after_stop_iteration() -> None:
    broker = InMemoryBroker()

    @broker.task
    def first(xs: list[int]) -> int:
        return next(iter(xs))

    async with broker:
        await first.kiq([])
        await asyncio.wait_for(broker.wait_all(), 5)
    assert not broker._running


def _exit() -> int:
    sys.exit(2)


async def _raise_system_exit() -> int:
    raise SystemExit(3)


async def _interrupt() -> int:
    raise KeyboardInterrupt


def _interrupt_plain() -> int:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("func", "type_name"),
    [
        (_exit, "SystemExit"),
        (_raise_system_exit, "SystemExit"),
        (_interrupt, "KeyboardInterrupt"),
        (_interrupt_plain, "KeyboardInterrupt"),
    ],
)
async def test_system_exit_and_keyboard_interrupt_fail_only_their_run(func, type_name: str) -> None:
    broker = InMemoryBroker()
    task = broker.task(func)

    @broker.task
    async def neighbour() -> str:
        await asyncio.sleep(0.05)
        return "still here"

    async with broker:
        other = await neighbour.kiq()
        handle = await task.kicker().kiq()
        finished = await asyncio.wait_for(handle.wait_result(), 5)
        # Raised again in the caller they would stop its program: they arrive as a podiq error.
        assert finished.is_err
        assert isinstance(finished.error, RemoteTaskError)
        assert finished.error.type_name == type_name
        assert finished.error.module == "builtins"
        assert type_name in finished.error.remote_traceback
        with pytest.raises(RemoteTaskError):
            await (await task.kiq())
        assert await other == "still here"


async def test_a_middleware_raising_system_exit_fails_the_run() -> None:
    from podiq import TaskiqMiddleware

    class Exiting(TaskiqMiddleware):
        def pre_execute(self, message):
            raise SystemExit(1)

    broker = InMemoryBroker().with_middlewares(Exiting())

    @broker.task
    async def job() -> int:
        return 1

    async with broker:
        with pytest.raises(RemoteTaskError, match="SystemExit"):
            await asyncio.wait_for((await job.kiq()).wait_result(), 5)
