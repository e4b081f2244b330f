"""Misused API calls raise podiq errors that name the problem and the fix, never a raw library error."""

from __future__ import annotations

import pytest

from podiq import (
    BrokerError,
    CronSpec,
    InMemoryBroker,
    InvalidArgumentsError,
    InvalidScheduleError,
    TaskiqMiddleware,
    gather,
)


@pytest.fixture
def job(broker: InMemoryBroker):
    @broker.task
    async def job() -> int:
        return 1

    return job


@pytest.mark.parametrize("value", [123, "", None])
def test_task_and_schedule_ids_must_be_non_empty_strings(job, value) -> None:
    with pytest.raises(InvalidArgumentsError, match=f"with_task_id\\(\\) takes a non-empty string, not {value!r}"):
        job.kicker().with_task_id(value)
    with pytest.raises(InvalidArgumentsError, match="with_schedule_id\\(\\) takes a non-empty string"):
        job.kicker().with_schedule_id(value)


async def test_an_id_generator_returning_a_non_string_is_named() -> None:
    broker = InMemoryBroker(task_id_generator=lambda: 5)  # type: ignore[arg-type, return-value]  # deliberately the wrong type, to see it refused
    task = broker.task("numbered")(lambda: 1)
    with pytest.raises(InvalidArgumentsError, match="task_id_generator returned 5; it must return a non-empty string"):
        await task.kiq()


def test_with_broker_takes_a_broker(job) -> None:
    with pytest.raises(InvalidArgumentsError, match="with_broker\\(\\) takes a broker"):
        job.kicker().with_broker("default")


async def test_gather_takes_handles(job) -> None:
    with pytest.raises(InvalidArgumentsError, match="gather\\(\\) takes .* not 42"):
        await gather(42)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


def test_cronspec_errors_are_podiq_errors() -> None:
    with pytest.raises(InvalidScheduleError, match="Invalid CronSpec: .*'99 \\* \\* \\* \\*' is not a valid cron"):
        CronSpec(minutes=99)


def test_broker_wiring_errors() -> None:
    broker = InMemoryBroker()
    with pytest.raises(BrokerError, match="takes a dict of \\{type: value\\}"):
        broker.add_dependency_context("x")  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    with pytest.raises(BrokerError, match="'startup' is not a broker event; use one of TaskiqEvents.WORKER_STARTUP"):
        broker.on_event("startup")(lambda state: None)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    with pytest.raises(BrokerError, match="is a middleware class; pass an instance, TaskiqMiddleware\\(\\)"):
        broker.add_middlewares(TaskiqMiddleware)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    with pytest.raises(BrokerError, match="is not a result backend .*subclass podiq.AsyncResultBackend"):
        InMemoryBroker(result_backend=object())  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    with pytest.raises(BrokerError, match="is not a result backend"):
        broker.with_result_backend("memory")  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


class _ForgetsToReturn(TaskiqMiddleware):
    def pre_send(self, message):
        message.labels["seen"] = True

    async def pre_execute(self, message):
        message.labels["ran"] = True


async def test_a_hook_that_forgets_to_return_the_message_is_named() -> None:
    broker = InMemoryBroker().with_middlewares(_ForgetsToReturn())
    task = broker.task("hooked")(lambda: 1)
    async with broker:
        with pytest.raises(
            BrokerError, match="_ForgetsToReturn.pre_send\\(\\) returned None instead of a TaskiqMessage"
        ):
            await task.kiq()


async def test_an_async_pre_execute_that_forgets_to_return_fails_the_run() -> None:
    class OnlyExecute(_ForgetsToReturn):
        def pre_send(self, message):
            return message

    broker = InMemoryBroker().with_middlewares(OnlyExecute())
    task = broker.task("hooked")(lambda: 1)
    async with broker:
        with pytest.raises(BrokerError, match="OnlyExecute.pre_execute\\(\\) returned None"):
            await (await task.kiq())
