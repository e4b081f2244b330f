"""Fixtures shared by the core unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podiq import InMemoryBroker


@pytest.fixture
async def broker() -> AsyncIterator[InMemoryBroker]:
    """A fresh, started InMemoryBroker; shut down (after every run finished) at the end."""
    fresh = InMemoryBroker()
    await fresh.startup()
    try:
        yield fresh
    finally:
        await fresh.shutdown()
