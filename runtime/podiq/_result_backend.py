from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

from podiq._progress import TaskProgress
from podiq._result import ResultRecord
from podiq.exceptions import TaskiqResultTimeoutError


class AsyncResultBackend(ABC):
    """Where finished runs and progress are stored, and how clients wait for them.

    Backends deal in ResultRecord (JSON data); converting to the task's types happens in the
    client. `wait_for_result` polls by default; backends that can be notified override it so a
    ready result wakes its waiter at once.
    """

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    @abstractmethod
    async def set_result(self, task_id: str, result: ResultRecord) -> None: ...

    @abstractmethod
    async def is_result_ready(self, task_id: str) -> bool: ...

    @abstractmethod
    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        """Return the record; raise ResultGetError when there is none."""

    @abstractmethod
    async def set_progress(self, task_id: str, progress: TaskProgress) -> None: ...

    @abstractmethod
    async def get_progress(self, task_id: str) -> TaskProgress | None: ...

    async def wait_for_result(
        self,
        task_id: str,
        timeout: float | None = None,
        check_interval: float = 0.2,
        with_logs: bool = False,
    ) -> ResultRecord:
        """Wait until the run finishes, or raise TaskiqResultTimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await self.is_result_ready(task_id):
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskiqResultTimeoutError(f"Task {task_id} did not finish within {timeout} s.")
            await asyncio.sleep(check_interval)
        return await self.get_result(task_id, with_logs=with_logs)


class DummyResultBackend(AsyncResultBackend):
    """The backend of a broker made without one, as in taskiq: stores nothing; every result
    reads as ready, with no value. Give the broker a real backend to read results."""

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        pass

    async def is_result_ready(self, task_id: str) -> bool:
        return True

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        return ResultRecord()

    async def set_progress(self, task_id: str, progress: TaskProgress) -> None:
        pass

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        return None
