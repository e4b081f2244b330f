"""AsyncKicker: labels, task id, broker and schedule id for one send."""

from __future__ import annotations

import pytest

from podiq import AsyncKicker, AsyncTaskiqTask, InMemoryBroker, TaskiqMessage, TaskiqMiddleware, UnknownTaskError


class Sent(TaskiqMiddleware):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[TaskiqMessage] = []

    def post_send(self, message: TaskiqMessage) -> None:
        self.messages.append(message)


async def test_with_labels_adds_to_the_task_labels(broker: InMemoryBroker) -> None:
    @broker.task(team="a")
    async def job() -> int:
        return 1

    kicker = job.kicker()
    assert kicker.with_labels(priority=2) is kicker
    task = await kicker.with_labels(team="b").kiq()
    finished = await task.wait_result(timeout=5)
    assert finished.labels == {"team": "b", "priority": 2}
    assert job.labels == {"team": "a"}


async def test_with_task_id(broker: InMemoryBroker) -> None:
    @broker.task
    async def job() -> str:
        return "x"

    kicker = job.kicker()
    assert kicker.with_task_id("my-id") is kicker
    task = await kicker.kiq()
    assert isinstance(task, AsyncTaskiqTask)
    assert task.task_id == "my-id"
    assert repr(task) == "AsyncTaskiqTask(task_id='my-id')"
    assert (await task.wait_result(timeout=5)).return_value == "x"
    assert "my-id" in broker.result_backend.results


async def test_with_broker_sends_to_the_other_broker() -> None:
    home, other = InMemoryBroker(), InMemoryBroker()

    async def job(x: int) -> int:
        return x + 100

    task = home.task(job)
    other.task(job)  # registered there under the same name
    kicker = task.kicker()
    assert kicker.with_broker(other) is kicker
    sent = await kicker.kiq(1)
    assert sent.broker is other
    assert (await sent.wait_result(timeout=5)).return_value == 101
    assert sent.task_id in other.result_backend.results
    assert home.result_backend.results == {}


async def test_with_broker_refuses_a_broker_without_the_task() -> None:
    home, other = InMemoryBroker(), InMemoryBroker()

    @home.task
    async def only_home() -> None:
        pass

    with pytest.raises(UnknownTaskError, match="only_home.*InMemoryBroker"):
        await only_home.kicker().with_broker(other).kiq()


async def test_with_schedule_id_sets_the_label(broker: InMemoryBroker) -> None:
    sent = Sent()
    broker.add_middlewares(sent)

    @broker.task
    async def job() -> int:
        return 3

    kicker = job.kicker()
    assert kicker.with_schedule_id("sched-1") is kicker
    task = await kicker.kiq()
    finished = await task.wait_result(timeout=5)
    assert finished.labels == {"schedule_id": "sched-1"}
    assert sent.messages[0].labels == {"schedule_id": "sched-1"}
    # the kicker's own labels are not changed by sending
    assert kicker.labels == {}


async def test_kicker_by_name_without_signature(broker: InMemoryBroker) -> None:
    @broker.task("by.name")
    async def job(x: int, y: int = 0) -> int:
        return x + y

    kicker: AsyncKicker = AsyncKicker("by.name", broker, {})
    task = await kicker.kiq(1, y=2)
    assert (await task.wait_result(timeout=5)).return_value == 3


async def test_kicker_by_name_still_refuses_unserialisable_values(broker: InMemoryBroker) -> None:
    from podiq import SerializationError

    @broker.task("by.name2")
    async def job(x) -> None:
        pass

    with pytest.raises(SerializationError, match="Argument 0 is a builtins.object"):
        await AsyncKicker("by.name2", broker, {}).kiq(object())
    with pytest.raises(SerializationError, match="Argument 'x' is a builtins.object"):
        await AsyncKicker("by.name2", broker, {}).kiq(x=object())


async def test_unknown_task_name_is_refused_at_kiq(broker: InMemoryBroker) -> None:
    with pytest.raises(UnknownTaskError, match="no task named 'missing'") as caught:
        await AsyncKicker("missing", broker, {}).kiq()
    assert caught.value.task_name == "missing"
    assert broker.result_backend.results == {}


async def test_kicker_kiq_messages_carry_encoded_arguments(broker: InMemoryBroker) -> None:
    sent = Sent()
    broker.add_middlewares(sent)

    @broker.task
    async def job(a: int, b: bytes, *, c: tuple[int, int]) -> None:
        pass

    task = await job.kicker().with_task_id("t1").kiq(1, b"\x00\xff", c=(1, 2))
    await task.wait_result(timeout=5)
    message = sent.messages[0]
    assert message.task_id == "t1"
    assert message.task_name == job.task_name
    assert message.args == [1, "AP8="]
    assert message.kwargs == {"c": [1, 2]}
