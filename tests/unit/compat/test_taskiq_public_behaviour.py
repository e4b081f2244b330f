"""taskiq 0.13's public behaviour that its own suite checks, held here in podiq's suite."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from podiq import InMemoryBroker, TaskiqResult
from podiq._exception_data import ExceptionData
from podiq.exceptions import (
    BrokerListenError,
    ListenError,
    RemoteTaskError,
    ResultGetError,
    ResultNotFoundError,
    TaskBrokerMismatchError,
)
from podiq.scheduler.merge_functions import only_new, only_unique, preserve_all
from podiq.scheduler.scheduled_task import ScheduledTask


async def test_listen_raises_a_runtime_error_that_says_why() -> None:
    broker = InMemoryBroker()
    with pytest.raises(BrokerListenError, match="InMemoryBroker cannot listen") as raised:
        async for _ in broker.listen():
            pass
    assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, ListenError)


def test_another_brokers_task_is_refused() -> None:
    first, second = InMemoryBroker(), InMemoryBroker()

    @first.task(task_name="compat.mismatch:job")
    async def job() -> None:
        return None

    with pytest.raises(TaskBrokerMismatchError, match="Task already has a different broker"):
        second._register_task(job.task_name, job)
    with pytest.raises(TaskBrokerMismatchError, match="Task already has a different broker"):
        second.register_task(job)  # the public way to the same mistake
    assert second.find_task("compat.mismatch:job") is None
    first._register_task(job.task_name, job)  # its own broker takes it again
    assert first.find_task("compat.mismatch:job") is job


def test_result_to_json_and_back_without_pickle() -> None:
    result: TaskiqResult[dict[str, Any]] = TaskiqResult(
        is_err=True, return_value={"a": [1, 2]}, execution_time=0.5, labels={"n": 1}, error=ValueError("Omg", [1, 2, 3])
    )
    data = json.loads(result.model_dump_json())
    assert data["return_value"] == {"a": [1, 2]} and data["labels"] == {"n": 1}
    # The error is podiq's exception data (type, module, args), not taskiq's celery-style dict.
    assert data["error"]["type"] == "ValueError" and data["error"]["args"] == ["Omg", [1, 2, 3]]
    back = TaskiqResult.model_validate_json(result.model_dump_json())
    assert back.is_err and back.return_value is None and back.execution_time == 0.5
    assert isinstance(back.error, ValueError) and back.error.args == ("Omg", [1, 2, 3])
    again = TaskiqResult.model_validate(result.model_dump(mode="json"))
    assert isinstance(again.error, ValueError) and again.labels == {"n": 1}


def test_result_json_of_a_value_that_is_not_json_names_it() -> None:
    result: TaskiqResult[object] = TaskiqResult(return_value=object())
    with pytest.raises(TypeError, match="return value"):
        result.model_dump_json()


def test_a_pydantic_validation_error_crosses_as_data() -> None:
    class Model(pydantic.BaseModel):
        count: int

    try:
        Model(count="many")  # type: ignore[arg-type]  # deliberately wrong, to get the error
    except pydantic.ValidationError as exc:
        error = exc
    data = ExceptionData.model_validate_json(ExceptionData.from_exception(error).model_dump_json())
    rebuilt = data.to_exception()
    assert isinstance(rebuilt, pydantic.ValidationError)
    assert rebuilt.title == "Model" and rebuilt.errors(include_url=False)[0]["loc"] == ("count",)
    unknown = data.model_copy(update={"validation": data.validation.model_copy(update={"errors": [{"type": "nope"}]})})  # type: ignore[union-attr]  # set just above
    assert isinstance(unknown.to_exception(), RemoteTaskError)  # what this pydantic cannot rebuild


async def test_a_missing_in_memory_result_is_also_a_key_error() -> None:
    broker = InMemoryBroker()
    with pytest.raises(KeyError) as raised:
        await broker.result_backend.get_result("never-sent")
    assert isinstance(raised.value, ResultNotFoundError) and isinstance(raised.value, ResultGetError)
    assert str(raised.value).startswith("No result for task never-sent")  # no KeyError quotes


def test_labels_travel_with_their_types() -> None:
    broker = InMemoryBroker()

    @broker.task(task_name="compat.labels:job", retries=3)
    async def job() -> None:
        return None

    message = job.kicker()._prepare_message()
    assert message.labels["retries"] == 3
    assert message.labels_types is None  # taskiq's "nothing to turn back"
    assert "labels_types" not in message.model_dump()
    with pytest.raises(pydantic.ValidationError):
        type(message)(task_id="t", task_name="n", labels_types={"retries": 1})


def test_merge_functions() -> None:
    a, b, c = (ScheduledTask(task_name=n, labels={}, args=[], kwargs={}, cron="* * * * *") for n in "abc")
    assert preserve_all([a, b], [b, c]) == [a, b, b, c]
    assert only_unique([a, b], [b, c]) == [a, b, c]
    assert only_new([a, b], [c]) == [c]
