"""TaskiqResult as handle and container (rules 1 and 2), and AsyncTaskiqTask."""

from __future__ import annotations

import asyncio

import pytest

from podiq import (
    AsyncTaskiqTask,
    InMemoryBroker,
    ResultGetError,
    ResultNotReadyError,
    TaskiqResult,
    TaskiqResultTimeoutError,
)

FIELDS = ["is_err", "return_value", "execution_time", "labels", "error", "log"]


@pytest.fixture
async def gate(broker: InMemoryBroker):
    """A task that waits until the test opens the gate, and one that fails."""
    event = asyncio.Event()

    @broker.task
    async def waits(value: int) -> int:
        await event.wait()
        return value

    @broker.task
    async def fails(message: str) -> int:
        raise ValueError(message)

    yield event, waits, fails
    event.set()


@pytest.mark.parametrize("field", FIELDS)
async def test_reading_a_field_before_completion_says_to_wait(gate, field: str) -> None:
    event, waits, _ = gate
    result = await waits.kiq(1)
    with pytest.raises(ResultNotReadyError) as caught:
        getattr(result, field)
    text = str(caught.value)
    assert f"TaskiqResult.{field}" in text
    assert result.task_id in text
    assert "has not finished" in text
    assert "await result" in text and "wait_result()" in text
    assert isinstance(caught.value, ResultGetError)
    event.set()
    assert await result == 1
    getattr(result, field)  # now readable


async def test_raise_for_error_before_completion_says_to_wait(gate) -> None:
    event, waits, _ = gate
    result = await waits.kiq(1)
    with pytest.raises(ResultNotReadyError, match=r"raise_for_error\(\).*Wait for it first"):
        result.raise_for_error()
    event.set()
    await result
    assert result.raise_for_error() is result


async def test_repr_of_pending_and_finished_handles(gate) -> None:
    event, waits, _ = gate
    result = await waits.kiq(5)
    assert repr(result) == f"TaskiqResult(task_id={result.task_id!r}, pending)"
    event.set()
    await result
    assert repr(result).startswith(f"TaskiqResult(task_id={result.task_id!r}, is_err=False, return_value=5, ")


async def test_wait_result_returns_value_and_fills_container(broker: InMemoryBroker) -> None:
    @broker.task(team="x")
    async def compute(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a * b

    result = await compute.kiq(6, 7)
    assert await result.wait_result(timeout=5, check_interval=0.01) == 42
    assert result.is_err is False
    assert result.return_value == 42
    assert result.error is None
    assert result.log is None
    assert result.labels == {"team": "x"}
    assert 0.005 < result.execution_time < 2
    assert await result.is_ready() is True
    # waiting again returns the same without asking the backend
    assert await result.wait_result() == 42


async def test_await_result_directly(broker: InMemoryBroker) -> None:
    @broker.task
    async def hello(name: str) -> str:
        return f"hello {name}"

    assert await (await hello.kiq("you")) == "hello you"


async def test_wait_result_raises_the_task_exception_and_fills_fields(gate) -> None:
    _, _, fails = gate
    result = await fails.kiq("bad input")
    with pytest.raises(ValueError, match="bad input"):
        await result.wait_result(timeout=5)
    assert result.is_err is True
    assert isinstance(result.error, ValueError)
    assert result.return_value is None
    with pytest.raises(ValueError, match="bad input"):
        result.raise_for_error()
    with pytest.raises(ValueError, match="bad input"):
        await result  # awaiting again raises again


async def test_wait_result_timeout(gate) -> None:
    event, waits, _ = gate
    result = await waits.kiq(3)
    with pytest.raises(TaskiqResultTimeoutError, match=f"Task {result.task_id} did not finish within 0.05 s"):
        await result.wait_result(timeout=0.05)
    with pytest.raises(ResultNotReadyError):
        result.return_value
    event.set()
    assert await result.wait_result(timeout=5) == 3


async def test_is_ready_on_handle(gate) -> None:
    event, waits, _ = gate
    result = await waits.kiq(1)
    assert await result.is_ready() is False
    event.set()
    await result.task.wait_result(timeout=5)
    assert await result.is_ready() is True
    # the container is filled only by waiting
    with pytest.raises(ResultNotReadyError):
        result.is_err
    assert await result == 1


async def test_kicker_kiq_gives_async_taskiq_task_whose_wait_does_not_raise(gate) -> None:
    _, _, fails = gate
    task = await fails.kicker().kiq("boom")
    assert isinstance(task, AsyncTaskiqTask)
    finished = await task.wait_result(timeout=5)
    assert isinstance(finished, TaskiqResult)
    assert finished.is_err is True
    assert isinstance(finished.error, ValueError)
    assert str(finished.error) == "boom"
    with pytest.raises(ValueError, match="boom"):
        finished.raise_for_error()


async def test_async_taskiq_task_get_result_and_is_ready(gate) -> None:
    event, waits, _ = gate
    task = await waits.kicker().kiq(9)
    assert await task.is_ready() is False
    with pytest.raises(ResultGetError, match=f"No result for task {task.task_id}"):
        await task.get_result()
    event.set()
    finished = await task.wait_result(check_interval=0.01, timeout=5)
    assert finished.return_value == 9
    assert finished.task_id == task.task_id
    assert await task.is_ready() is True
    again = await task.get_result(with_logs=True)
    assert again.return_value == 9 and again.is_err is False


async def test_async_taskiq_task_wait_timeout(gate) -> None:
    event, waits, _ = gate
    task = await waits.kicker().kiq(9)
    with pytest.raises(TaskiqResultTimeoutError):
        await task.wait_result(timeout=0.02)
    event.set()
    assert (await task.wait_result()).return_value == 9


async def test_get_result_for_a_never_sent_id(broker: InMemoryBroker) -> None:
    task: AsyncTaskiqTask = AsyncTaskiqTask("never-sent", broker)
    assert await task.is_ready() is False
    with pytest.raises(ResultGetError, match="never sent"):
        await task.get_result()
    assert await task.get_progress() is None


async def test_handle_exposes_its_task_and_progress(gate) -> None:
    event, waits, _ = gate
    result = await waits.kiq(1)
    assert isinstance(result.task, AsyncTaskiqTask)
    assert result.task.task_id == result.task_id
    assert await result.get_progress() is None
    event.set()
    await result


def test_container_built_directly() -> None:
    error = KeyError("k")
    result: TaskiqResult = TaskiqResult(
        is_err=True, return_value=None, execution_time=1.5, labels={"a": 1}, error=error, log="log", task_id="t"
    )
    assert result.is_err is True
    assert result.execution_time == 1.5
    assert result.labels == {"a": 1}
    assert result.error is error
    assert result.log == "log"
    assert result.task_id == "t"
    with pytest.raises(KeyError):
        result.raise_for_error()
    with pytest.raises(ResultGetError, match="finished container, not bound to a task"):
        result.task


async def test_container_built_directly_is_ready_and_awaitable() -> None:
    ok: TaskiqResult = TaskiqResult(return_value=[1, 2])
    assert await ok.is_ready() is True
    assert await ok == [1, 2]
    assert ok.raise_for_error() is ok
    assert ok.labels == {}


def test_is_err_without_error_object_does_not_raise() -> None:
    result: TaskiqResult = TaskiqResult(is_err=True)
    assert result.raise_for_error() is result


def test_from_record_converts_to_return_type() -> None:
    from datetime import date

    from podiq import ResultRecord

    record = ResultRecord(return_value="2026-01-02", execution_time=0.5, labels={"x": 1})
    result = TaskiqResult.from_record(record, date, "tid")
    assert result.return_value == date(2026, 1, 2)
    assert result.task_id == "tid"
    unreadable = TaskiqResult.from_record(ResultRecord(return_value="not a date"), date, "tid")
    assert unreadable.is_err and unreadable.return_value is None
    with pytest.raises(ResultGetError, match="Result of task tid cannot be read as"):
        unreadable.raise_for_error()


async def test_cancel_through_the_handle(gate) -> None:
    from podiq import TaskCancelledError

    _, waits, _ = gate
    result = await waits.kiq(1)
    await asyncio.sleep(0)
    await result.cancel()
    with pytest.raises(TaskCancelledError, match="was cancelled"):
        await result.wait_result(timeout=5)
