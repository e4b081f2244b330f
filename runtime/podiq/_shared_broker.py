"""taskiq's shared broker: libraries declare tasks without knowing the application's broker."""

from __future__ import annotations

from typing import Any, NoReturn, ParamSpec, TypeVar

from podiq._broker import SHARED_TASKS, AsyncBroker
from podiq._decor import AsyncTaskiqDecoratedTask
from podiq._kicker import AsyncKicker
from podiq._message import TaskiqMessage
from podiq.exceptions import SharedBrokerListenError, SharedBrokerSendTaskError

P = ParamSpec("P")
R = TypeVar("R")


class SharedDecoratedTask(AsyncTaskiqDecoratedTask[P, R]):
    """A task of the shared broker: sent through the broker set with `default_broker()`."""

    def kicker(self) -> AsyncKicker[P, R]:
        kicker = super().kicker()
        default = getattr(self.broker, "_default_broker", None)
        return kicker.with_broker(default) if default is not None else kicker


class AsyncSharedBroker(AsyncBroker):
    """Declares tasks (`@async_shared_broker.task`) that any broker of the process can run.

    Sending needs a real broker: `async_shared_broker.default_broker(broker)` once, or
    `task.kicker().with_broker(broker)` per call.
    """

    decorator_class = SharedDecoratedTask

    def __init__(self) -> None:
        super().__init__()
        self._default_broker: AsyncBroker | None = None

    def default_broker(self, new_broker: AsyncBroker) -> None:
        """The broker shared tasks are sent through from now on."""
        self._default_broker = new_broker

    def register_task(self, func: Any, task_name: str | None = None, **labels: Any) -> Any:
        task = super().register_task(func, task_name, **labels)
        SHARED_TASKS[task.task_name] = task
        return task

    async def kick(self, message: TaskiqMessage) -> NoReturn:
        raise SharedBrokerSendTaskError()

    def listen(self) -> NoReturn:
        raise SharedBrokerListenError()


async_shared_broker = AsyncSharedBroker()
shared_task = async_shared_broker.task
