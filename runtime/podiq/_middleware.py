from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker
    from podiq._message import TaskiqMessage
    from podiq._result import TaskiqResult


class TaskiqMiddleware:
    """Hooks around sending and executing tasks, as in taskiq. Each hook may be sync or async."""

    def __init__(self) -> None:
        self.broker: AsyncBroker = None  # type: ignore[assignment]  # set by the broker before any hook runs

    def set_broker(self, broker: AsyncBroker) -> None:
        self.broker = broker

    def startup(self) -> Awaitable[None] | None:
        """Runs during broker startup."""

    def shutdown(self) -> Awaitable[None] | None:
        """Runs during broker shutdown."""

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage | Awaitable[TaskiqMessage]:
        """Client side, before the message is sent; may return a changed message."""
        return message

    def post_send(self, message: TaskiqMessage) -> Awaitable[None] | None:
        """Client side, after the message was sent."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage | Awaitable[TaskiqMessage]:
        """Worker side, before the task runs; may return a changed message."""
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> Awaitable[None] | None:
        """Worker side, after the task ran, before its result is stored."""

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> Awaitable[None] | None:
        """Worker side, after the result was stored."""

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> Awaitable[None] | None:
        """Worker side, when the task raised."""


def overrides(middleware: TaskiqMiddleware, hook: str) -> bool:
    """Whether a middleware implements a hook, so untouched hooks cost nothing per task."""
    return getattr(type(middleware), hook) is not getattr(TaskiqMiddleware, hook)


async def maybe_await(value: Any) -> Any:
    if isinstance(value, Awaitable):
        return await value
    return value


async def message_from(middleware: TaskiqMiddleware, hook: str, message: TaskiqMessage) -> TaskiqMessage:
    """Run a hook that may change the message; a hook that forgets to return it is named."""
    from podiq._message import TaskiqMessage
    from podiq.exceptions import BrokerError

    changed = await maybe_await(getattr(middleware, hook)(message))
    if not isinstance(changed, TaskiqMessage):
        raise BrokerError(
            f"{type(middleware).__name__}.{hook}() returned {changed!r} instead of a TaskiqMessage; "
            "return the message (changed or not) at the end of the hook."
        )
    return changed
