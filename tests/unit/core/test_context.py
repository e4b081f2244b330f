"""Context: message, broker, state, requeue, reject and progress."""

from __future__ import annotations

import asyncio

import pytest

from podiq import (
    Context,
    InMemoryBroker,
    NoResultError,
    TaskiqDepends,
    TaskiqMessage,
    TaskiqState,
    TaskProgress,
    TaskRejectedError,
)


async def test_context_exposes_message_broker_and_state(broker: InMemoryBroker) -> None:
    broker.state.greeting = "hi"
    seen: dict = {}

    @broker.task(team="core")
    async def inspect_context(x: int, context: Context = TaskiqDepends()) -> str:
        seen["message"] = context.message
        seen["broker"] = context.broker
        seen["state"] = context.state
        return context.state.greeting

    result = await inspect_context.kiq(5)
    assert await result == "hi"
    message = seen["message"]
    assert isinstance(message, TaskiqMessage)
    assert message.task_id == result.task_id
    assert message.task_name == inspect_context.task_name
    assert message.args == [5]
    assert message.kwargs == {}
    assert message.labels == {"team": "core"}
    assert seen["broker"] is broker
    assert seen["state"] is broker.state


async def test_requeue_increments_the_label_and_ends_the_attempt(broker: InMemoryBroker) -> None:
    attempts: list[str] = []

    @broker.task
    async def until_three(context: Context = TaskiqDepends()) -> int:
        count = context.message.labels.get("X-Taskiq-requeue", "0")
        attempts.append(count)
        if int(count) < 3:
            await context.requeue()
            raise AssertionError("requeue() must not return")
        return int(count)

    result = await until_three.kiq()
    assert await result.wait_result(timeout=5) == 3
    assert attempts == ["0", "1", "2", "3"]
    assert result.labels["X-Taskiq-requeue"] == "3"


async def test_requeue_raises_no_result_error() -> None:
    requeued: list[TaskiqMessage] = []

    class Recorder(InMemoryBroker):
        async def requeue(self, message: TaskiqMessage) -> None:
            requeued.append(message)

    broker = Recorder()
    context = Context(TaskiqMessage(task_id="1", task_name="t", labels={"X-Taskiq-requeue": "4"}), broker)
    with pytest.raises(NoResultError):
        await context.requeue()
    assert requeued[0].labels["X-Taskiq-requeue"] == "5"
    assert requeued[0].task_id == "1"


def test_reject_raises_task_rejected_error() -> None:
    context = Context(TaskiqMessage(task_id="abc", task_name="my.task"), InMemoryBroker())
    with pytest.raises(TaskRejectedError, match=r"Task my.task \(abc\) was rejected"):
        context.reject()


async def test_rejected_run_ends_as_rejected(broker: InMemoryBroker) -> None:
    calls: list[int] = []

    @broker.task(retry_on_error=True, max_retries=5)
    async def refuse(context: Context = TaskiqDepends()) -> None:
        calls.append(1)
        context.reject()

    result = await refuse.kiq()
    with pytest.raises(TaskRejectedError):
        await result
    assert result.is_err is True
    assert calls == [1]


async def test_set_progress_and_get_progress_while_running(broker: InMemoryBroker) -> None:
    reported: asyncio.Queue[str] = asyncio.Queue()
    go_on: asyncio.Queue[None] = asyncio.Queue()

    @broker.task
    async def long_job(context: Context = TaskiqDepends()) -> str:
        await go_on.get()
        await context.set_progress(1, 3, "loading")
        await reported.put("first")
        await go_on.get()
        await context.set_progress(TaskProgress(current=2, total=3, message="working"))
        await reported.put("second")
        await go_on.get()
        return "done"

    result = await long_job.kiq()
    assert await result.get_progress() is None  # nothing reported yet
    await go_on.put(None)
    assert await asyncio.wait_for(reported.get(), 5) == "first"
    progress = await result.get_progress()
    assert progress == TaskProgress(1, 3, "loading")
    assert progress.fraction == pytest.approx(1 / 3)

    await go_on.put(None)
    assert await asyncio.wait_for(reported.get(), 5) == "second"
    assert await result.task.get_progress() == TaskProgress(2, 3, "working")  # AsyncTaskiqTask too

    await go_on.put(None)
    assert await result.wait_result(timeout=5) == "done"
    # progress of a finished run stays readable with its result, as in taskiq
    assert await result.get_progress() == TaskProgress(2, 3, "working")


async def test_set_progress_without_total(broker: InMemoryBroker) -> None:
    seen: list = []

    @broker.task
    async def unknown_total(context: Context = TaskiqDepends()) -> None:
        await context.set_progress(7)
        seen.append(await context.broker.result_backend.get_progress(context.message.task_id))

    await (await unknown_total.kiq())
    assert seen == [TaskProgress(7, 0, "")]
    assert seen[0].fraction == 0.0


async def test_invalid_progress_fails_the_task_with_a_podiq_error(broker: InMemoryBroker) -> None:
    from podiq import InvalidProgressError

    @broker.task
    async def too_far(context: Context = TaskiqDepends()) -> None:
        await context.set_progress(5, 3)

    with pytest.raises(InvalidProgressError, match="current=5 is larger than total=3. Pass whole numbers"):
        await (await too_far.kiq())


async def test_context_state_is_the_broker_state(broker: InMemoryBroker) -> None:
    @broker.task
    async def count(context: Context = TaskiqDepends(), state: TaskiqState = TaskiqDepends()) -> int:
        assert context.state is state
        state.counter = state.get("counter", 0) + 1
        return state.counter

    assert [await (await count.kiq()) for _ in range(3)] == [1, 2, 3]
    assert broker.state.counter == 3
