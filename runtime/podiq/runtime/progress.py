"""Progress and results of the running task, written into its own TaskRun's status."""

from __future__ import annotations

import asyncio
import logging
import time

from podiq._progress import TaskProgress
from podiq._result import ResultRecord
from podiq._result_backend import AsyncResultBackend
from podiq.exceptions import ResultGetError, ResultSetError
from podiq.kubernetes.api import TaskRunApi
from podiq.kubernetes.resources import Progress, to_api

logger = logging.getLogger("podiq.runtime")


class TaskRunStatusBackend(AsyncResultBackend):
    """The result backend inside a task's pod: progress goes to the TaskRun's status.

    Progress writes are throttled to one per `interval` seconds; the latest value is always
    written in the end (`flush()`), so a fast loop of set_progress costs few API writes.
    """

    def __init__(self, api: TaskRunApi, namespace: str, name: str, interval: float = 1.0) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.interval = interval
        self.latest: TaskProgress | None = None
        self._written: TaskProgress | None = None
        self._last_write = float("-inf")
        self._pending: asyncio.Task[None] | None = None

    async def set_progress(self, task_id: str, progress: TaskProgress) -> None:
        self.latest = progress
        wait = self._last_write + self.interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._flush_after(wait))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        progress = self.latest
        if progress is None or progress == self._written:
            return
        self._last_write = time.monotonic()
        status = Progress.of(progress)
        try:
            await self.api.patch_status(
                self.namespace, self.name, {"progress": to_api(status), "progressText": status.text}
            )
        except Exception as exc:  # noqa: BLE001 - progress is a courtesy: the task goes on, the report catches up
            logger.warning("Could not write progress of TaskRun %s (%s); trying again with the next.", self.name, exc)
            return
        self._written = progress

    async def close(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        return self.latest

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        raise ResultSetError("The runtime writes the attempt's outcome itself when the task ends.")

    async def is_result_ready(self, task_id: str) -> bool:
        return False

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        raise ResultGetError("A running task has no result yet.")
