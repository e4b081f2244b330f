"""Property tests: values survive kiq -> worker -> result, and the conversions directly."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podiq import ExceptionData, InMemoryBroker
from podiq._serialization import from_json_compatible, to_json_compatible

SETTINGS = settings(max_examples=50, deadline=None)


class Suit(enum.Enum):
    HEARTS = "hearts"
    SPADES = "spades"
    CLUBS = "clubs"


@dataclasses.dataclass
class Item:
    name: str
    quantity: int
    tags: list[str]


class Customer(pydantic.BaseModel):
    id: uuid.UUID
    name: str
    since: date
    balance: Decimal
    suit: Suit | None = None


# Offsets in whole minutes: ISO 8601 (and so the wire format) has no seconds in an offset, which
# rules out the local mean times that IANA zones use before about 1900-1980.
fixed_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=fixed_offsets
) | st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones())
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
items = st.builds(Item, name=st.text(), quantity=st.integers(), tags=st.lists(st.text(), max_size=3))
customers = st.builds(
    Customer,
    id=st.uuids(),
    name=st.text(),
    since=st.dates(),
    balance=decimals,
    suit=st.none() | st.sampled_from(Suit),
)

CASES: list[tuple[str, Any, Any]] = [
    ("int", int, st.integers()),
    ("float", float, st.floats(allow_nan=False)),
    ("str", str, st.text()),
    ("bytes", bytes, st.binary()),
    ("datetime", datetime, aware_datetimes),
    ("date", date, st.dates()),
    ("decimal", Decimal, decimals),
    ("uuid", uuid.UUID, st.uuids()),
    ("enum", Suit, st.sampled_from(Suit)),
    ("json", Any, json_values),
    ("list_of_json", list[Any], st.lists(json_values, max_size=4)),
    ("dataclass", Item, items),
    ("model", Customer, customers),
    ("list_of_models", list[Customer], st.lists(customers, max_size=3)),
]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, datetime):
        # Same instant and offset. (`==` across zones is always False for times in a repeated
        # DST hour, by Python's rules, so compare the instants explicitly.)
        return a.timestamp() == b.timestamp() and a.utcoffset() == b.utcoffset()
    return a == b and type(a) is type(b)


def _echo_task(broker: InMemoryBroker, annotation: Any):
    async def echo(value):
        return value

    echo.__annotations__ = {"value": annotation, "return": annotation}
    return broker.register_task(echo, f"echo-{uuid.uuid4().hex}")


@pytest.mark.parametrize(("annotation", "strategy"), [(a, s) for _, a, s in CASES], ids=[n for n, _, _ in CASES])
def test_round_trip_through_a_task(annotation: Any, strategy: Any) -> None:
    broker = InMemoryBroker()
    task = _echo_task(broker, annotation)
    loop = asyncio.new_event_loop()

    @SETTINGS
    @given(value=strategy)
    def check(value: Any) -> None:
        async def send() -> Any:
            return await (await task.kiq(value)).wait_result(timeout=5)

        returned = loop.run_until_complete(send())
        assert _equal(returned, value), (returned, value)

    try:
        check()
    finally:
        loop.run_until_complete(broker.shutdown())
        loop.close()


def test_float_nan_and_infinity_come_back_as_floats() -> None:
    import math

    broker = InMemoryBroker()
    task = _echo_task(broker, float)

    async def send(value: float) -> float:
        return await (await task.kiq(value)).wait_result(timeout=5)

    assert math.isnan(asyncio.run(send(math.nan)))
    assert asyncio.run(send(math.inf)) == math.inf
    assert asyncio.run(send(-math.inf)) == -math.inf


@pytest.mark.parametrize(("annotation", "strategy"), [(a, s) for _, a, s in CASES], ids=[n for n, _, _ in CASES])
def test_direct_round_trip(annotation: Any, strategy: Any) -> None:
    @SETTINGS
    @given(value=strategy)
    def check(value: Any) -> None:
        encoded = to_json_compatible(value, what="value")
        import json

        wire = json.loads(json.dumps(encoded))  # plain JSON only
        assert _equal(from_json_compatible(wire, annotation, what="value"), value)

    check()


@SETTINGS
@given(
    exc_type=st.sampled_from([ValueError, KeyError, RuntimeError, LookupError]), args=st.lists(st.text(), max_size=3)
)
def test_exception_data_round_trip(exc_type: type[BaseException], args: list[str]) -> None:
    original = exc_type(*args)
    data = ExceptionData.from_exception(original)
    rebuilt = ExceptionData.model_validate_json(data.model_dump_json()).to_exception()
    assert type(rebuilt) is exc_type
    assert rebuilt.args == tuple(args)
    assert str(rebuilt) == str(original)
