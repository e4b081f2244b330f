"""AsyncTaskiqTask as taskiq builds it, shared brokers, ProgressTracker, await_inplace, BrokerMessage."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest.mock import AsyncMock

import pydantic
import pytest

from podiq import (
    AsyncTaskiqTask,
    BrokerError,
    BrokerMessage,
    InMemoryBroker,
    ResultGetError,
    ResultIsReadyError,
    TaskiqDepends,
    TaskiqResult,
    async_shared_broker,
)
from podiq.brokers.shared_broker import AsyncSharedBroker
from podiq.depends.progress_tracker import ProgressTracker, TaskState
from podiq.exceptions import SharedBrokerListenError, SharedBrokerSendTaskError, UnknownTaskError


async def test_reattach_to_a_stored_task_id_with_the_result_backend() -> None:
    broker = InMemoryBroker()

    @broker.task
    async def double(x: int) -> int:
        return 2 * x

    task_id = (await double.kiq(21)).task_id
    await broker.wait_all()
    again: AsyncTaskiqTask[int] = AsyncTaskiqTask(task_id, broker.result_backend, int)
    assert await again.is_ready()
    assert (await again.wait_result()).return_value == 42
    with pytest.raises(BrokerError, match="AsyncTaskiqTask\\(task_id, broker\\)"):
        await again.cancel()
    await AsyncTaskiqTask(task_id, broker).cancel()  # with the broker: allowed (finished: nothing to do)


async def test_backend_failures_are_wrapped() -> None:
    backend = AsyncMock()
    backend.is_result_ready.side_effect = ConnectionError("down")
    backend.get_result.side_effect = ConnectionError("down")
    task: AsyncTaskiqTask[Any] = AsyncTaskiqTask(task_id="t", result_backend=backend)
    with pytest.raises(ResultIsReadyError, match="down") as ready:
        await task.is_ready()
    assert isinstance(ready.value.__cause__, ConnectionError)
    with pytest.raises(ResultGetError, match="down"):
        await task.get_result()


async def test_a_backend_written_for_taskiq_is_polled_and_its_results_handed_on() -> None:
    answers = iter([False, False, True])
    stored = TaskiqResult(return_value="done")
    backend = AsyncMock()
    backend.is_result_ready.side_effect = lambda task_id: next(answers)
    backend.get_result.return_value = stored
    result = await AsyncTaskiqTask("t", backend).wait_result(check_interval=0.01, timeout=2)
    assert result is stored


async def test_shared_tasks_run_on_the_default_broker() -> None:
    shared = AsyncSharedBroker()

    @shared.task(task_name="compat.shared:triple")
    async def triple(x: int) -> int:
        return 3 * x

    with pytest.raises(SharedBrokerSendTaskError, match="default_broker"):
        await triple.kiq(1)
    with pytest.raises(SharedBrokerListenError):
        await shared.listen()
    app = InMemoryBroker()
    assert (await (await triple.kicker().with_broker(app).kiq(2)).wait_result()).return_value == 6
    shared.default_broker(app)
    assert await (await triple.kiq(3)) == 9
    assert async_shared_broker.find_task("compat.shared:triple") is not None  # every broker finds it
    with pytest.raises(UnknownTaskError, match="Cannot send unknown task to the queue, task name - nope"):
        await app.kick(BrokerMessage(task_id="x", task_name="nope", message=b"{}"))


async def test_progress_tracker_reports_state_and_meta() -> None:
    broker = InMemoryBroker()
    proceed = asyncio.Event()

    @broker.task
    async def job(progress: ProgressTracker[dict[str, int]] = TaskiqDepends()) -> None:
        await progress.set_progress(TaskState.STARTED, {"done": 1})
        await progress.set_progress("halfway")  # keeps the last meta
        await proceed.wait()

    handle = await job.kiq()
    for _ in range(100):
        progress = await handle.get_progress()
        if progress is not None and progress.state == "halfway":
            break
        await asyncio.sleep(0.01)
    assert progress is not None and progress.meta == {"done": 1} and (progress.current, progress.total) == (0, 0)
    proceed.set()
    await handle


async def test_progress_tracker_refuses_a_bad_state() -> None:
    broker = InMemoryBroker()

    @broker.task
    async def job(progress: ProgressTracker[int] = TaskiqDepends()) -> None:
        await progress.set_progress(("not", "a state"), 1)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused

    task = (await job.kiq()).task
    result = await task.wait_result()
    # pydantic's ValidationError, as taskiq raises, rebuilt from its errors on the client.
    assert isinstance(result.error, pydantic.ValidationError)
    assert {tuple(e["loc"])[0] for e in result.error.errors()} == {"state"}
    assert await task.get_progress() is None


async def test_await_inplace_runs_the_task_within_kiq() -> None:
    broker = InMemoryBroker(await_inplace=True)
    done: list[bool] = []

    @broker.task
    async def job() -> None:
        await asyncio.sleep(0.01)
        done.append(True)

    handle = await job.kiq()
    assert done == [True]
    assert await handle.is_ready()
    assert not broker._running


def test_messages_carry_their_json_as_taskiq_brokers_send_it() -> None:
    from podiq import TaskiqMessage

    message = TaskiqMessage(task_id="t", task_name="n", args=[1], labels={"a": "b"})
    assert json.loads(message.message) == message.model_dump()
    carried = BrokerMessage(
        task_id=message.task_id, task_name=message.task_name, message=message.message, labels=message.labels
    )
    assert TaskiqMessage.model_validate_json(carried.message) == message
