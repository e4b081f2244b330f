from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from podiq._kicker import AsyncKicker
from podiq._result import TaskiqResult
from podiq._serialization import Signature

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker
    from podiq._schedules import CreatedSchedule, CronSpec, ScheduleSource

P = ParamSpec("P")
R = TypeVar("R")


class AsyncTaskiqDecoratedTask(Generic[P, R]):
    """A function registered with `@broker.task`: call it locally, or send it with `kiq()`."""

    def __init__(
        self,
        broker: AsyncBroker,
        task_name: str,
        original_func: Callable[P, R],
        labels: dict[str, Any],
    ) -> None:
        self.broker = broker
        self.task_name = task_name
        self.original_func = original_func
        self.labels = labels
        self.signature = Signature(original_func, task_name)
        self.return_type = self.signature.return_type
        # An object whose __call__ is async runs on the loop too, like a coroutine function.
        self.is_async = inspect.iscoroutinefunction(original_func) or (
            not inspect.isroutine(original_func)
            and inspect.iscoroutinefunction(getattr(type(original_func), "__call__", None))  # noqa: B004 - the type's __call__ itself is inspected
        )
        self.__name__ = getattr(original_func, "__name__", task_name)
        self.__doc__ = original_func.__doc__
        self.__wrapped__ = original_func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, without a broker."""
        return self.original_func(*args, **kwargs)

    def kicker(self) -> AsyncKicker[P, R]:
        return AsyncKicker(
            task_name=self.task_name,
            broker=self.broker,
            labels=self.labels,
            return_type=self.return_type,
            signature=self.signature,
        )

    async def kiq(self, *args: P.args, **kwargs: P.kwargs) -> TaskiqResult[R]:
        """Send the task; returns a TaskiqResult handle (`await` it for the value)."""
        return TaskiqResult.pending(await self.kicker().kiq(*args, **kwargs))

    async def schedule_by_cron(
        self, source: ScheduleSource, cron: str | CronSpec, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        return await self.kicker().schedule_by_cron(source, cron, *args, **kwargs)

    async def schedule_by_time(
        self, source: ScheduleSource, time: datetime, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        return await self.kicker().schedule_by_time(source, time, *args, **kwargs)

    async def schedule_by_interval(
        self, source: ScheduleSource, interval: int | timedelta, *args: P.args, **kwargs: P.kwargs
    ) -> CreatedSchedule[R]:
        return await self.kicker().schedule_by_interval(source, interval, *args, **kwargs)

    def __repr__(self) -> str:
        return f"AsyncTaskiqDecoratedTask({self.task_name!r})"
