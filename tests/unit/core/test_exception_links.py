"""Exceptions keep what links them across the boundary: groups (for except*), causes, contexts,
notes and the attributes builtins keep outside __dict__."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podiq import ExceptionData, InMemoryBroker, RemoteTaskError
from podiq._exception_data import MAX_LINKED


async def _raised(broker: InMemoryBroker, func) -> BaseException:
    task = broker.register_task(func, f"links.{func.__name__}")
    finished = await asyncio.wait_for((await task.kicker().kiq()).wait_result(), 5)
    assert finished.is_err and finished.error is not None
    return finished.error


async def test_an_exception_group_can_be_caught_with_except_star(broker: InMemoryBroker) -> None:
    async def many() -> None:
        raise ExceptionGroup("many", [ValueError("v"), KeyError("k"), ExceptionGroup("inner", [TypeError("t")])])

    error = await _raised(broker, many)
    assert isinstance(error, ExceptionGroup) and error.message == "many"
    caught: list[str] = []
    try:
        raise error
    except* ValueError as group:
        caught.append(f"value {group.exceptions[0]}")
    except* TypeError as group:
        caught.append(f"type {group.exceptions[0].exceptions[0]}")
    except* KeyError:
        caught.append("key")
    assert caught == ["value v", "type t", "key"]


async def test_os_errors_keep_their_filename_and_errno(broker: InMemoryBroker) -> None:
    def missing() -> None:
        open("/nonexistent/podiq/file")

    error = await _raised(broker, missing)
    assert isinstance(error, FileNotFoundError)
    assert (error.errno, error.filename) == (2, "/nonexistent/podiq/file")
    assert "/nonexistent/podiq/file" in str(error)


async def test_import_error_keeps_name_and_path(broker: InMemoryBroker) -> None:
    async def broken() -> None:
        raise ImportError("cannot import", name="plugin", path="/opt/plugin.py")

    error = await _raised(broker, broken)
    assert isinstance(error, ImportError) and (error.name, error.path) == ("plugin", "/opt/plugin.py")


async def test_cause_context_and_notes_cross(broker: InMemoryBroker) -> None:
    async def wrapped() -> None:
        try:
            {}["key"]
        except KeyError as exc:
            failure = RuntimeError("lookup failed")
            failure.add_note("while loading the config")
            raise failure from exc

    async def during() -> None:
        try:
            1 / 0
        except ZeroDivisionError:
            raise ValueError("while handling")  # noqa: B904 - the implicit __context__ is what is tested

    error = await _raised(broker, wrapped)
    assert isinstance(error.__cause__, KeyError) and error.__cause__.args == ("key",)
    assert error.__notes__[0] == "while loading the config"
    assert error.__notes__[1].startswith("Remote traceback:")
    error = await _raised(broker, during)
    assert isinstance(error.__context__, ZeroDivisionError) and error.__cause__ is None


async def test_a_suppressed_context_stays_suppressed(broker: InMemoryBroker) -> None:
    async def quiet() -> None:
        try:
            1 / 0
        except ZeroDivisionError:
            raise ValueError("clean") from None

    error = await _raised(broker, quiet)
    assert error.__context__ is None and error.__cause__ is None


async def test_the_cause_of_stop_iteration_in_a_plain_task_crosses(broker: InMemoryBroker) -> None:
    def first(xs: list[int]) -> int:
        return next(iter(xs))

    task = broker.register_task(first, "links.first")
    with pytest.raises(RuntimeError, match="first raised StopIteration") as caught:
        await (await task.kiq([]))
    assert isinstance(caught.value.__cause__, RemoteTaskError)
    assert caught.value.__cause__.type_name == "StopIteration"


def test_a_context_loop_is_kept_once() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    data = ExceptionData.from_exception(first)
    assert data.context is not None and data.context.message == "b" and data.context.context is None
    rebuilt = data.to_exception()
    assert str(rebuilt.__context__) == "b"


@settings(max_examples=20, deadline=None)
@given(depth=st.integers(0, 500))
def test_any_cause_depth_is_bounded_and_round_trips(depth: int) -> None:
    exc: BaseException = ValueError("root")
    for level in range(depth):
        outer = RuntimeError(f"level {level}")
        outer.__cause__ = exc
        exc = outer
    data = ExceptionData.model_validate_json(ExceptionData.from_exception(exc).model_dump_json())
    rebuilt, kept = data.to_exception(), 0
    while rebuilt.__cause__ is not None:
        rebuilt, kept = rebuilt.__cause__, kept + 1
    assert kept == min(depth, MAX_LINKED - 1)


@settings(max_examples=30, deadline=None)
@given(text=st.text(alphabet=st.characters(codec=None, categories=None, exclude_categories=()), max_size=12))
def test_any_message_makes_a_json_record(text: str) -> None:
    data = ExceptionData.from_exception(ValueError(text, {"k": text}))
    again = ExceptionData.model_validate_json(data.model_dump_json())
    assert again.type == "ValueError"
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert again.message == str(ValueError(text, {"k": text})) and again.args[0] == text
