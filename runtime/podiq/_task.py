from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from podiq._progress import TaskProgress
from podiq._result import TaskiqResult
from podiq._timeouts import wait_seconds

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker

ReturnType = TypeVar("ReturnType")


class AsyncTaskiqTask(Generic[ReturnType]):
    """A sent task, as in taskiq: ask whether it is ready, wait for it, read its progress.

    `wait_result()` returns a finished TaskiqResult container and does not raise the task's
    exception; use `raise_for_error()` on it, or await the handle that `task.kiq()` returns.
    """

    __slots__ = ("task_id", "broker", "return_type")

    def __init__(self, task_id: str, broker: AsyncBroker, return_type: Any = Any) -> None:
        self.task_id = task_id
        self.broker = broker
        self.return_type = return_type

    async def is_ready(self) -> bool:
        return await self.broker.result_backend.is_result_ready(self.task_id)

    async def get_result(self, with_logs: bool = False) -> TaskiqResult[ReturnType]:
        record = await self.broker.result_backend.get_result(self.task_id, with_logs=with_logs)
        return TaskiqResult.from_record(record, self.return_type, self.task_id)

    async def wait_result(
        self,
        check_interval: float = 0.2,
        timeout: float = -1.0,
        with_logs: bool = False,
    ) -> TaskiqResult[ReturnType]:
        """Wait until the run finishes; the backend wakes the waiter, `check_interval` is kept for compatibility."""
        record = await self.broker.result_backend.wait_for_result(
            self.task_id,
            timeout=wait_seconds(timeout, "AsyncTaskiqTask.wait_result()"),
            check_interval=check_interval,
            with_logs=with_logs,
        )
        return TaskiqResult.from_record(record, self.return_type, self.task_id)

    async def get_progress(self) -> TaskProgress | None:
        return await self.broker.result_backend.get_progress(self.task_id)

    async def cancel(self) -> None:
        """Stop the run; its result becomes a TaskCancelledError."""
        await self.broker.cancel(self.task_id)

    def __repr__(self) -> str:
        return f"AsyncTaskiqTask(task_id={self.task_id!r})"
