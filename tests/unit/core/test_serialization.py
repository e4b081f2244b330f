"""Arguments and return values cross as JSON and come back as their annotated types."""

from __future__ import annotations

import dataclasses
import enum
import socket
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional

import pydantic
import pytest

from podiq import InMemoryBroker, InvalidArgumentsError, SerializationError, TaskiqMessage, TaskiqMiddleware
from podiq._serialization import from_json_compatible, to_json_compatible


class Point(pydantic.BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Order:
    id: int
    items: list[str]
    placed: datetime


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


async def roundtrip(broker: InMemoryBroker, annotation: Any, value: Any) -> Any:
    async def echo(value):  # annotated below, so the broker converts to `annotation`
        return value

    echo.__annotations__ = {"value": annotation, "return": annotation}
    task = broker.register_task(echo, f"echo-{uuid.uuid4().hex}")
    return await (await task.kiq(value))


UTC_NOW = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (Point, Point(x=1, y=2)),
        (Order, Order(1, ["a", "b"], UTC_NOW)),
        (datetime, UTC_NOW),
        (datetime, datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
        (date, date(2026, 2, 28)),
        (time, time(23, 59, 1)),
        (timedelta, timedelta(days=2, seconds=5)),
        (Color, Color.BLUE),
        (Level, Level.HIGH),
        (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
        (Decimal, Decimal("12345678901234567890.123456789")),
        (bytes, b"\x00\x01\xfe\xff binary"),
        (tuple[int, str, float], (1, "two", 3.5)),
        (set[int], {3, 1, 2}),
        (frozenset[str], frozenset({"a", "b"})),
        (dict[int, Point], {1: Point(x=1, y=1), 20: Point(x=2, y=2)}),
        (Optional[Point], None),
        (Optional[Point], Point(x=0, y=0)),
        (int | None, 5),
        (list[list[Color]], [[Color.RED], [], [Color.BLUE, Color.RED]]),
        (list[Order], [Order(2, [], UTC_NOW)]),
        (dict[str, list[uuid.UUID]], {"ids": [uuid.UUID(int=1), uuid.UUID(int=2)]}),
    ],
    ids=lambda v: getattr(v, "__name__", None) or repr(v)[:30],
)
async def test_values_come_back_as_their_annotated_type(broker: InMemoryBroker, annotation: Any, value: Any) -> None:
    returned = await roundtrip(broker, annotation, value)
    assert returned == value
    assert type(returned) is type(value)


async def test_the_task_receives_converted_arguments(broker: InMemoryBroker) -> None:
    seen: dict[str, Any] = {}

    @broker.task
    async def receives(point: Point, when: datetime, ids: set[int], data: bytes, *, color: Color) -> None:
        seen.update(point=point, when=when, ids=ids, data=data, color=color)

    await (await receives.kiq(Point(x=1, y=2), UTC_NOW, {1, 2}, b"\xff", color=Color.RED))
    assert seen == {"point": Point(x=1, y=2), "when": UTC_NOW, "ids": {1, 2}, "data": b"\xff", "color": Color.RED}
    assert isinstance(seen["point"], Point) and isinstance(seen["ids"], set)


async def test_only_json_travels_in_the_message(broker: InMemoryBroker) -> None:
    messages: list[TaskiqMessage] = []

    class Keep(TaskiqMiddleware):
        def post_send(self, message: TaskiqMessage) -> None:
            messages.append(message)

    broker.add_middlewares(Keep())

    @broker.task
    async def job(point: Point, when: datetime, amount: Decimal, color: Color, raw: bytes) -> None:
        pass

    await (await job.kiq(Point(x=1, y=2), UTC_NOW, Decimal("1.10"), Color.RED, b"hi"))
    assert messages[0].args == [{"x": 1, "y": 2}, "2026-03-29T01:30:15.123456Z", "1.10", "red", "aGk="]
    import json

    json.dumps(messages[0].model_dump())  # would raise if anything were not plain JSON


async def test_argument_that_does_not_fit_the_annotation_fails_the_run(broker: InMemoryBroker) -> None:
    @broker.task
    async def wants_int(value: int) -> int:
        return value

    with pytest.raises(InvalidArgumentsError, match="Argument 'value' does not match its annotation"):
        await (await wants_int.kiq("not a number"))  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


async def test_return_value_that_does_not_fit_the_annotation(broker: InMemoryBroker) -> None:
    from podiq import SerializationError

    @broker.task
    async def lies() -> int:
        return "not a number"  # type: ignore[return-value]  # deliberately wrong, to see it refused

    with pytest.raises(SerializationError, match="The return value of task .*lies' does not match its annotation"):
        await (await lies.kiq())


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (object, "builtins.object"),
        (lambda: lambda x: x, "builtins.function"),
        (lambda: socket.socket(), "socket.socket"),
    ],
    ids=["object", "lambda", "socket"],
)
async def test_unserialisable_argument_is_refused_at_kiq(broker: InMemoryBroker, make, type_name: str) -> None:
    @broker.task
    async def takes(thing: Any, other: int = 0) -> None:
        pass

    value = make()
    try:
        with pytest.raises(SerializationError, match=f"Argument 'thing' of task .* is a {type_name}") as caught:
            await takes.kiq(value)
        assert isinstance(caught.value, TypeError)
        with pytest.raises(SerializationError, match=f"Argument 'other' of task .* is a {type_name}"):
            await takes.kiq(1, other=value)
    finally:
        if isinstance(value, socket.socket):
            value.close()
    await broker.wait_all()
    assert broker.result_backend.results == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((), {}, "missing a required argument: 'a'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"c": 3}, "got an unexpected keyword argument 'c'"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
    ],
)
async def test_wrong_arguments_are_refused_at_kiq(broker: InMemoryBroker, args, kwargs, problem: str) -> None:
    @broker.task("two_args")
    async def two(a: int, b: int = 0) -> int:
        return a + b

    with pytest.raises(InvalidArgumentsError, match=f"Cannot send task 'two_args': {problem}") as caught:
        await two.kiq(*args, **kwargs)
    assert "Call it with the arguments of its signature (a: " in str(caught.value)
    assert isinstance(caught.value, TypeError)
    # a right call of the same shape after a wrong one still works
    assert await (await two.kiq(1, b=2)) == 3


async def test_unserialisable_return_value_is_an_error_result(broker: InMemoryBroker) -> None:
    @broker.task
    async def returns_object() -> Any:
        return object()

    result = await returns_object.kiq()
    with pytest.raises(SerializationError, match="The return value of task .* is a builtins.object"):
        await result
    assert result.is_err is True


def test_to_and_from_json_compatible_directly() -> None:
    assert to_json_compatible({"when": date(2026, 1, 1), "raw": b"\x00"}, what="x") == {
        "when": "2026-01-01",
        "raw": "AA==",
    }
    assert from_json_compatible("2026-01-01", date, what="x") == date(2026, 1, 1)
    assert from_json_compatible("AA==", bytes, what="x") == b"\x00"
    assert from_json_compatible({"x": 1}, Any, what="x") == {"x": 1}
    with pytest.raises(SerializationError, match="Thing is a builtins.object"):
        to_json_compatible(object(), what="Thing")
    with pytest.raises(InvalidArgumentsError, match="Thing does not match its annotation"):
        from_json_compatible("x", int, what="Thing")


def test_unhashable_annotation_passes_values_through() -> None:
    class Weird:
        __hash__ = None  # type: ignore[assignment]  # patched for this test

    assert from_json_compatible([1, 2], Weird(), what="x") == [1, 2]
