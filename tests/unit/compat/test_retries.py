"""The retry middlewares as settings of the built-in retries, and `types_of_exceptions`."""

from __future__ import annotations

import asyncio

import pytest

from podiq import InMemoryBroker, SimpleRetryMiddleware, SmartRetryMiddleware, TaskiqMessage
from podiq.schedule_sources import LabelScheduleSource


def _counting(broker: InMemoryBroker, error: type[Exception], **labels):
    runs: list[int] = []

    @broker.task(f"flaky-{len(broker.get_all_tasks())}", **labels)
    async def flaky() -> None:
        runs.append(1)
        raise error(len(runs))

    return flaky, runs


async def test_built_in_retries_honour_types_of_exceptions() -> None:
    broker = InMemoryBroker()
    other, other_runs = _counting(broker, TypeError, retry_on_error=True, types_of_exceptions=(ValueError,))
    listed, listed_runs = _counting(
        broker, ValueError, retry_on_error=True, max_retries=2, types_of_exceptions=(ValueError,)
    )
    with pytest.raises(TypeError):
        await (await other.kiq())
    with pytest.raises(ValueError):
        await (await listed.kiq())
    assert len(other_runs) == 1  # not a listed type: run once, as taskiq does
    assert len(listed_runs) == 3  # podiq's max_retries: retries after the first attempt


async def test_exception_types_stay_with_the_task_and_are_not_sent() -> None:
    broker = InMemoryBroker()
    task, _ = _counting(broker, ValueError, types_of_exceptions=(ValueError,))
    assert "types_of_exceptions" not in task.kicker()._prepare_message().labels
    assert task.labels["types_of_exceptions"] == (ValueError,)


async def test_simple_middleware_counts_runs_as_taskiq_does() -> None:
    broker = InMemoryBroker().with_middlewares(SimpleRetryMiddleware(default_retry_count=4, default_retry_label=True))
    task, runs = _counting(broker, ValueError)
    with pytest.raises(ValueError, match="4"):
        await (await task.kiq())
    assert len(runs) == 4  # four runs in all; the last error is the result


async def test_simple_middleware_respects_retry_on_error_false_and_its_types() -> None:
    broker = InMemoryBroker().with_middlewares(
        SimpleRetryMiddleware(default_retry_label=True, types_of_exceptions=(KeyError,))
    )
    unlisted, unlisted_runs = _counting(broker, ValueError)
    switched_off, off_runs = _counting(broker, KeyError, retry_on_error=False)
    own_types, own_runs = _counting(broker, ValueError, max_retries=2, types_of_exceptions=(ValueError,))
    for task in (unlisted, switched_off, own_types):
        assert (await (await task.kiq()).task.wait_result()).is_err
    assert (len(unlisted_runs), len(off_runs), len(own_runs)) == (1, 1, 2)


async def test_no_result_on_retry_false_stores_each_failed_attempt() -> None:
    broker = InMemoryBroker().with_middlewares(SimpleRetryMiddleware(no_result_on_retry=False, default_retry_count=2))
    gate = asyncio.Event()
    runs: list[int] = []

    @broker.task(retry_on_error=True)
    async def task() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first")
        await gate.wait()
        return "second"

    sent = await task.kicker().kiq()
    first = await sent.wait_result(timeout=2)
    assert first.is_err and str(first.error) == "first"
    broker.result_backend.results.pop(sent.task_id)  # type: ignore[attr-defined]  # an attribute of this backend only
    gate.set()
    assert (await sent.wait_result(timeout=2)).return_value == "second"


def test_smart_middleware_delays() -> None:
    message = TaskiqMessage(task_id="t", task_name="n")
    assert SmartRetryMiddleware(default_delay=2).make_delay(message, 3) == 2
    assert SmartRetryMiddleware(default_delay=2, use_delay_exponent=True).make_delay(message, 3) == 6
    assert (
        SmartRetryMiddleware(default_delay=2, use_delay_exponent=True, max_delay_exponent=5).make_delay(message, 3) == 5
    )
    jittered = SmartRetryMiddleware(default_delay=2, use_jitter=True).make_delay(message, 1)
    assert 2 <= jittered < 3
    labelled = message.model_copy(update={"labels": {"delay": "0.5"}})
    assert SmartRetryMiddleware(default_delay=2).make_delay(labelled, 1) == 0.5
    with pytest.raises(TypeError, match="schedule_source"):
        SmartRetryMiddleware(schedule_source=object())  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the in-process broker waits before retries, recorded instead of slept."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: object) -> None:
        if delay > 0:
            recorded.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("podiq._inmemory.asyncio.sleep", recording_sleep)
    return recorded


async def test_smart_middleware_waits_before_each_retry(waits: list[float]) -> None:
    broker = InMemoryBroker()
    # With a schedule source taskiq schedules each retry after the delay; podiq waits it.
    broker.add_middlewares(
        SmartRetryMiddleware(
            default_retry_count=3,
            default_retry_label=True,
            default_delay=1.5,
            use_delay_exponent=True,
            schedule_source=LabelScheduleSource(broker),
        )
    )
    task, runs = _counting(broker, ValueError)
    assert (await (await task.kiq()).task.wait_result(timeout=5)).is_err
    assert len(runs) == 3
    assert waits == [1.5, 3.0]


async def test_smart_middleware_without_a_schedule_source_retries_at_once(waits: list[float]) -> None:
    # taskiq then sends the retry at once with a `delay` label, which its InMemoryBroker ignores.
    broker = InMemoryBroker().with_middlewares(
        SmartRetryMiddleware(default_retry_count=3, default_retry_label=True, default_delay=30)
    )
    task, runs = _counting(broker, ValueError)
    assert (await (await task.kiq()).task.wait_result(timeout=5)).is_err
    assert len(runs) == 3
    assert waits == []
