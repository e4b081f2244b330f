"""Shutting down is bounded: runs get `shutdown_timeout` seconds, and a failing `async with` body is not held back."""

from __future__ import annotations

import asyncio
import time

import pytest

from podiq import InMemoryBroker, TaskCancelledError


def _forever_broker(**settings):
    broker = InMemoryBroker(**settings)

    @broker.task
    async def forever() -> None:
        await asyncio.sleep(3600)

    return broker, forever


async def test_the_callers_exception_is_not_held_back_by_runs() -> None:
    broker, forever = _forever_broker()
    started = time.monotonic()
    with pytest.raises(ValueError, match="mine"):
        async with broker:
            handle = await forever.kiq()
            raise ValueError("mine")
    assert time.monotonic() - started < 2
    with pytest.raises(TaskCancelledError):
        await asyncio.wait_for(handle.wait_result(), 5)


async def test_shutdown_cancels_runs_after_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    broker, forever = _forever_broker(shutdown_timeout=0.1)
    await broker.startup()
    handle = await forever.kiq()
    started = time.monotonic()
    await asyncio.wait_for(broker.shutdown(), 5)
    assert time.monotonic() - started < 2
    assert "shutdown_timeout=0.1" in caplog.text and handle.task_id in caplog.text
    with pytest.raises(TaskCancelledError):
        await asyncio.wait_for(handle.wait_result(), 5)


async def test_shutdown_still_lets_short_runs_finish() -> None:
    broker = InMemoryBroker(shutdown_timeout=5)

    @broker.task
    async def short() -> int:
        await asyncio.sleep(0.05)
        return 1

    async with broker:
        handle = await short.kiq()
    assert await handle == 1


async def test_plain_tasks_are_cancelled_at_shutdown_too(caplog: pytest.LogCaptureFixture) -> None:
    broker = InMemoryBroker(shutdown_timeout=0.05)
    stop = __import__("threading").Event()

    @broker.task
    def blocking() -> None:
        stop.wait(5)

    async with broker:
        handle = await blocking.kiq()
    # Its thread cannot be stopped: shutdown says so rather than leaving the exit to hang unexplained.
    assert "1 plain tasks are still running in their threads" in caplog.text
    stop.set()
    with pytest.raises(TaskCancelledError):
        await asyncio.wait_for(handle.wait_result(), 5)
