"""What a task's signature allows is decided when it is declared, and conversion follows each parameter's own hint."""

from __future__ import annotations

import warnings
from datetime import date
from typing import TYPE_CHECKING

import pytest

from podiq import BrokerError, Context, InMemoryBroker, TaskiqDepends

if TYPE_CHECKING:
    from decimal import Decimal


async def test_one_unresolvable_hint_leaves_the_others_converted() -> None:
    broker = InMemoryBroker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @broker.task
        async def mixed(day: date, amount: Decimal) -> str:
            return f"{type(day).__name__} {type(amount).__name__}"

    assert any("'Decimal' of 'amount' cannot be resolved" in str(w.message) for w in caught)
    async with broker:
        assert await (await mixed.kiq(date(2026, 1, 1), 3)) == "date int"


async def test_var_keyword_and_var_positional_are_converted(broker: InMemoryBroker) -> None:
    @broker.task
    async def kinds(*days: date, **more: date) -> list[str]:
        return [type(d).__name__ for d in (*days, *more.values())]

    assert await (await kinds.kiq(date(2026, 1, 1), later=date(2026, 2, 1))) == ["date", "date"]


async def test_positional_only_parameters_work(broker: InMemoryBroker) -> None:
    @broker.task
    async def digits(tens: int, /, ones: int, context: Context = TaskiqDepends()) -> int:
        return tens * 10 + ones

    assert await (await digits.kiq(4, 2)) == 42
    assert await (await digits.kiq(4, ones=2)) == 42


def test_a_positional_only_dependency_is_refused() -> None:
    with pytest.raises(BrokerError, match="dependency 'context' is positional-only.*move it after the '/'"):

        @InMemoryBroker().task
        async def job(context: Context = TaskiqDepends(), /) -> None: ...


def test_a_dependency_before_var_positional_is_refused() -> None:
    with pytest.raises(BrokerError, match=r"dependency 'context' comes before \*args.*keyword-only"):

        @InMemoryBroker().task
        async def job(context: Context = TaskiqDepends(), *values: int) -> None: ...


async def test_a_dependency_after_var_positional_works(broker: InMemoryBroker) -> None:
    @broker.task
    async def total(*values: int, context: Context = TaskiqDepends()) -> int:
        assert isinstance(context, Context)
        return sum(values)

    assert await (await total.kiq(1, 2, 3)) == 6
