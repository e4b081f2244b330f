"""Fixtures shared by the core unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from podiq import InMemoryBroker


@pytest.fixture
async def broker() -> AsyncIterator[InMemoryBroker]:
    """A fresh, started InMemoryBroker, shut down at the end.

    Runs a failed test left blocked are cancelled after a few seconds, so a failure is
    reported instead of hanging the suite.
    """
    fresh = InMemoryBroker()
    await fresh.startup()
    try:
        yield fresh
    finally:
        try:
            await asyncio.wait_for(fresh.wait_all(), 5)
        except TimeoutError:
            for task_id in list(fresh._running):
                await fresh.cancel(task_id)
        await fresh.shutdown()
