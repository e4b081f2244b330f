"""Property tests over hostile values: any string, any nesting depth, any keyword name. Each either
arrives unchanged or is refused at kiq() with a SerializationError that says why; never a raw error."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podiq import InMemoryBroker, SerializationError
from podiq._serialization import to_json_compatible

SETTINGS = settings(max_examples=60, deadline=None)
# Every code point, lone surrogates included (hypothesis leaves them out of st.text() by default).
any_text = st.text(alphabet=st.characters(codec=None, categories=None, exclude_categories=()), max_size=20)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@SETTINGS
@given(text=any_text)
def test_any_string_survives_or_is_refused_naming_the_surrogate(text: str) -> None:
    try:
        assert to_json_compatible(text, what="Argument 'x'") == text
        assert not _has_surrogate(text)
    except SerializationError as exc:
        assert _has_surrogate(text)
        assert "Argument 'x' contains a lone surrogate" in str(exc) and "bytes" in str(exc)


@SETTINGS
@given(texts=st.lists(any_text, max_size=3), key=any_text)
def test_nested_strings_and_keys_survive_or_are_refused(texts: list[str], key: str) -> None:
    value = {key: texts}
    try:
        assert to_json_compatible(value, what="v") == value
        assert not any(map(_has_surrogate, [key, *texts]))
    except SerializationError as exc:
        assert any(map(_has_surrogate, [key, *texts])) and "lone surrogate" in str(exc)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(0, 3000))
def test_any_nesting_depth_round_trips_or_is_refused_at_kiq(depth: int) -> None:
    broker = InMemoryBroker()

    @broker.task
    async def echo(x: Any) -> Any:
        return x

    async def scenario() -> None:
        async with broker:
            value = _nested(depth)
            try:
                handle = await echo.kiq(value)
            except SerializationError as exc:
                assert "Argument 'x'" in str(exc)
                return
            assert await asyncio.wait_for(handle.wait_result(), 5) == value

    asyncio.run(scenario())


@SETTINGS
@given(values=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.dates(), max_size=4))
def test_var_keyword_arguments_are_converted_to_their_annotation(values: dict[str, date]) -> None:
    broker = InMemoryBroker()

    @broker.task
    async def collect(**days: date) -> dict[str, str]:
        return {name: type(day).__name__ for name, day in days.items()}

    async def scenario() -> None:
        async with broker:
            assert await (await collect.kiq(**values)) == {name: "date" for name in values}

    asyncio.run(scenario())
