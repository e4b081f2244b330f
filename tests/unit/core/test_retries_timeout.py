"""The labels podiq acts on: retry_on_error, max_retries, timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from podiq import (
    Context,
    InMemoryBroker,
    InvalidArgumentsError,
    TaskiqDepends,
    TaskOptions,
    TaskRejectedError,
    TaskTimeoutError,
)


async def test_retry_on_error_counts_attempts_and_gives_up_after_max(broker: InMemoryBroker) -> None:
    attempts: list[int] = []

    @broker.task(retry_on_error=True, max_retries=2)
    async def always_fails(context: Context = TaskiqDepends()) -> None:
        attempts.append(int(context.message.labels.get("_retries", 0)))
        raise OSError(f"attempt {len(attempts)}")

    result = await always_fails.kiq()
    with pytest.raises(OSError, match="attempt 3"):
        await result.wait_result(timeout=5)
    assert attempts == [0, 1, 2]  # the first attempt and two retries
    assert result.labels["_retries"] == 2


async def test_success_after_failures(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task(retry_on_error=True, max_retries=5)
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("flaky")
        return "ok"

    result = await flaky.kiq()
    assert await result == "ok"
    assert calls == 3
    assert result.is_err is False


async def test_default_max_retries_is_three(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task(retry_on_error=True)
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError

    with pytest.raises(ValueError):
        await (await fails.kiq())
    assert calls == 4


async def test_no_retry_without_retry_on_error(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task(max_retries=5)
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError

    with pytest.raises(ValueError):
        await (await fails.kiq())
    assert calls == 1


async def test_max_retries_zero_means_one_attempt(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError

    task = await fails.kicker().with_labels(retry_on_error=True, max_retries=0).kiq()
    finished = await task.wait_result(timeout=5)
    assert isinstance(finished.error, ValueError)
    assert calls == 1


async def test_reject_is_never_retried(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task(retry_on_error=True, max_retries=3)
    async def rejects(context: Context = TaskiqDepends()) -> None:
        nonlocal calls
        calls += 1
        context.reject()

    finished = await (await rejects.kicker().kiq()).wait_result(timeout=5)
    assert isinstance(finished.error, TaskRejectedError)
    assert calls == 1


async def test_timeout_label_on_async_task(broker: InMemoryBroker) -> None:
    @broker.task(timeout=0.05)
    async def too_slow() -> None:
        await asyncio.sleep(5)

    started = time.monotonic()
    result = await too_slow.kiq()
    with pytest.raises(TaskTimeoutError, match="ran longer than its timeout of 0.05 s") as caught:
        await result.wait_result(timeout=5)
    assert isinstance(caught.value, TimeoutError)
    assert time.monotonic() - started < 1.0


async def test_timeout_label_on_sync_task(broker: InMemoryBroker) -> None:
    @broker.task(timeout=0.05)
    def too_slow() -> None:
        time.sleep(0.3)

    started = time.monotonic()
    result = await too_slow.kiq()
    with pytest.raises(TaskTimeoutError):
        await result.wait_result(timeout=5)
    assert time.monotonic() - started < 0.25  # the result does not wait for the thread


async def test_timeout_not_reached(broker: InMemoryBroker) -> None:
    @broker.task
    async def quick() -> int:
        await asyncio.sleep(0.01)
        return 1

    finished = await (await quick.kicker().with_labels(timeout=5).kiq()).wait_result()
    assert finished.is_err is False and finished.return_value == 1


async def test_timeout_is_retried_when_asked(broker: InMemoryBroker) -> None:
    calls = 0

    @broker.task(timeout=0.02, retry_on_error=True, max_retries=1)
    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1)

    with pytest.raises(TaskTimeoutError):
        await (await slow.kiq())
    assert calls == 2


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"max_retries": "x"}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_on_error": "perhaps"}, "retry_on_error"),
    ],
)
async def test_invalid_labels_are_refused_before_sending(broker: InMemoryBroker, labels: dict, label: str) -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)

    with pytest.raises(InvalidArgumentsError, match=f"label '{label}'"):
        await broker.register_task(job, "from_decorator", **labels).kiq()
    good = broker.register_task(job, "from_kicker")
    with pytest.raises(InvalidArgumentsError, match=f"label '{label}'"):
        await good.kicker().with_labels(**labels).kiq()
    await broker.wait_all()
    assert runs == []
    assert broker.result_backend.results == {}


def test_task_options_from_labels() -> None:
    options = TaskOptions.from_labels({"timeout": "2.5", "retry_on_error": True, "max_retries": 1, "other": "x"})
    assert options == TaskOptions(timeout=2.5, retry_on_error=True, max_retries=1)
    assert TaskOptions.from_labels({}) == TaskOptions(timeout=None, retry_on_error=False, max_retries=3)
    assert options.should_retry("ValueError", 0) is True
    assert options.should_retry("ValueError", 1) is False
    assert options.should_retry("TaskRejectedError", 0) is False
    assert options.should_retry("TaskCancelledError", 0) is False
    assert options.should_retry(None, 0) is False
    assert TaskOptions().should_retry("ValueError", 0) is False
