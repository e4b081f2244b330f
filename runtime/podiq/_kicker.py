from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar

from podiq._labels import SCHEDULE_ID_LABEL, TaskOptions
from podiq._message import TaskiqMessage
from podiq._middleware import maybe_await, message_from, overrides
from podiq._retries import sendable_labels
from podiq._serialization import Signature, to_json_compatible
from podiq._task import AsyncTaskiqTask
from podiq.exceptions import InvalidArgumentsError

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker
    from podiq._schedules import CreatedSchedule, CronSpec, ScheduleSource

P = ParamSpec("P")
R = TypeVar("R")


class AsyncKicker(Generic[P, R]):
    """Sends one task with call-specific settings: labels, task id, broker, schedule id."""

    def __init__(
        self,
        task_name: str,
        broker: AsyncBroker,
        labels: dict[str, Any],
        return_type: Any = Any,
        signature: Signature | None = None,
    ) -> None:
        self.task_name = task_name
        self.broker = broker
        self.labels = labels  # replaced, never mutated, by with_labels()
        self.return_type = return_type
        self.signature = signature
        self.custom_task_id: str | None = None
        self.custom_schedule_id: str | None = None

    def with_labels(self, **labels: Any) -> Self:
        TaskOptions.checked(labels)
        self.labels = {**self.labels, **labels}
        return self

    def with_task_id(self, task_id: str) -> Self:
        self.custom_task_id = _checked_id(task_id, "with_task_id()")
        return self

    def with_schedule_id(self, schedule_id: str) -> Self:
        self.custom_schedule_id = _checked_id(schedule_id, "with_schedule_id()")
        return self

    def with_broker(self, broker: AsyncBroker) -> Self:
        from podiq._broker import AsyncBroker

        if not isinstance(broker, AsyncBroker):
            raise InvalidArgumentsError(f"with_broker() takes a broker such as InMemoryBroker(), not {broker!r}.")
        self.broker = broker
        return self

    def _prepare_message(self, *args: Any, **kwargs: Any) -> TaskiqMessage:
        """Check and encode the call; every refusal happens here, before anything is sent."""
        if self.signature is not None:
            encoded_args, encoded_kwargs = self.signature.encode_call(args, kwargs)
        else:  # kicked by name: no signature to check against, but values must still be JSON
            encoded_args = [to_json_compatible(v, what=f"Argument {i}") for i, v in enumerate(args)]
            encoded_kwargs = {k: to_json_compatible(v, what=f"Argument {k!r}") for k, v in kwargs.items()}
        labels = sendable_labels(self.labels)
        if self.custom_schedule_id is not None:
            labels[SCHEDULE_ID_LABEL] = self.custom_schedule_id
        task_id = self.custom_task_id or self.broker.id_generator()
        if not isinstance(task_id, str) or not task_id:
            raise InvalidArgumentsError(
                f"The broker's task_id_generator returned {task_id!r}; it must return a non-empty string."
            )
        return TaskiqMessage(
            task_id=task_id,
            task_name=self.task_name,
            labels=labels,
            args=encoded_args,
            kwargs=encoded_kwargs,
        )

    async def kiq(self, *args: P.args, **kwargs: P.kwargs) -> AsyncTaskiqTask[R]:
        """Send the task; returns an AsyncTaskiqTask to wait on."""
        message = self._prepare_message(*args, **kwargs)
        middlewares = self.broker.middlewares
        for middleware in middlewares:
            if overrides(middleware, "pre_send"):
                message = await message_from(middleware, "pre_send", message)
        await self.broker.kick(message)
        for middleware in middlewares:
            if overrides(middleware, "post_send"):
                await maybe_await(middleware.post_send(message))
        return AsyncTaskiqTask(message.task_id, self.broker, self.return_type)

    async def schedule_by_cron(
        self, source: ScheduleSource, cron: str | CronSpec, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        from podiq._schedules import schedule_call

        return await schedule_call(self, source, {"cron": cron}, args, kwargs)

    async def schedule_by_time(
        self, source: ScheduleSource, time: datetime, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        from podiq._schedules import schedule_call

        return await schedule_call(self, source, {"time": time}, args, kwargs)

    async def schedule_by_interval(
        self, source: ScheduleSource, interval: int | timedelta, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        from podiq._schedules import schedule_call

        return await schedule_call(self, source, {"interval": interval}, args, kwargs)


def _checked_id(value: Any, method: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{method} takes a non-empty string, not {value!r}.")
    return value
