from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from podiq._progress import TaskProgress
from podiq._result import ResultRecord, TaskiqResult
from podiq._result_backend import AsyncResultBackend
from podiq._timeouts import wait_seconds
from podiq.exceptions import BrokerError, ResultGetError, ResultIsReadyError, TaskiqError, TaskiqResultTimeoutError

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker

ReturnType = TypeVar("ReturnType")


class AsyncTaskiqTask(Generic[ReturnType]):
    """A sent task, as in taskiq: ask whether it is ready, wait for it, read its progress.

    `AsyncTaskiqTask(task_id, result_backend)` re-attaches to a stored task id, as in taskiq;
    passing the broker instead of its backend (or `broker=`) also allows `cancel()`.
    `wait_result()` returns a finished TaskiqResult container and does not raise the task's
    exception; use `raise_for_error()` on it, or await the handle that `task.kiq()` returns.
    Failures of the backend surface as ResultIsReadyError and ResultGetError.
    """

    __slots__ = ("task_id", "result_backend", "return_type", "broker")

    def __init__(
        self,
        task_id: str,
        result_backend: AsyncResultBackend | AsyncBroker,
        return_type: Any = Any,
        *,
        broker: AsyncBroker | None = None,
    ) -> None:
        from podiq._broker import AsyncBroker

        if isinstance(result_backend, AsyncBroker):
            broker, result_backend = result_backend, result_backend.result_backend
        self.task_id = task_id
        self.result_backend = result_backend
        self.return_type = Any if return_type is None else return_type
        self.broker = broker

    async def is_ready(self) -> bool:
        try:
            return bool(await self.result_backend.is_result_ready(self.task_id))
        except TaskiqError:
            raise
        except Exception as exc:
            raise ResultIsReadyError(f"Could not check whether task {self.task_id} is ready: {exc!r}") from exc

    async def get_result(self, with_logs: bool = False) -> TaskiqResult[ReturnType]:
        try:
            record = await self.result_backend.get_result(self.task_id, with_logs=with_logs)
        except TaskiqError:
            raise
        except Exception as exc:
            raise ResultGetError(f"Could not read the result of task {self.task_id}: {exc!r}") from exc
        return self._result(record)

    async def wait_result(
        self,
        check_interval: float = 0.2,
        timeout: float = -1.0,
        with_logs: bool = False,
    ) -> TaskiqResult[ReturnType]:
        """Wait until the run finishes; podiq's backends wake the waiter, others are polled every `check_interval` s."""
        timeout_s = wait_seconds(timeout, "AsyncTaskiqTask.wait_result()")
        if not isinstance(self.result_backend, AsyncResultBackend):
            return await self._poll(check_interval, timeout_s, with_logs)
        record = await self.result_backend.wait_for_result(
            self.task_id, timeout=timeout_s, check_interval=check_interval, with_logs=with_logs
        )
        return self._result(record)

    async def get_progress(self) -> TaskProgress | None:
        return await self.result_backend.get_progress(self.task_id)

    async def cancel(self) -> None:
        """Stop the run; its result becomes a TaskCancelledError."""
        if self.broker is None:
            raise BrokerError(
                f"Task {self.task_id} was attached to a result backend only; build it with "
                "AsyncTaskiqTask(task_id, broker) to cancel it."
            )
        await self.broker.cancel(self.task_id)

    async def _poll(self, check_interval: float, timeout: float | None, with_logs: bool) -> TaskiqResult[ReturnType]:
        # A result backend written for taskiq: no notification, so ask at each interval.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await self.is_ready():
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskiqResultTimeoutError(f"Task {self.task_id} did not finish within {timeout} s.")
            await asyncio.sleep(check_interval)
        return await self.get_result(with_logs=with_logs)

    def _result(self, record: Any) -> TaskiqResult[ReturnType]:
        if isinstance(record, ResultRecord):
            return TaskiqResult.from_record(record, self.return_type, self.task_id)
        # A backend written for taskiq returns its own result objects: hand them on as they are.
        return record  # type: ignore[no-any-return]  # a backend written for taskiq returns its own objects

    def __repr__(self) -> str:
        return f"AsyncTaskiqTask(task_id={self.task_id!r})"
