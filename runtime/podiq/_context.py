from __future__ import annotations

from typing import NoReturn

from podiq._broker import AsyncBroker
from podiq._labels import REQUEUE_LABEL, TaskOptions
from podiq._message import TaskiqMessage
from podiq._progress import TaskProgress
from podiq._state import TaskiqState
from podiq.exceptions import NoResultError, TaskRejectedError


class Context:
    """What a running task knows about its run; get it with `context: Context = TaskiqDepends()`."""

    def __init__(self, message: TaskiqMessage, broker: AsyncBroker) -> None:
        self.message = message
        self.broker = broker

    @property
    def state(self) -> TaskiqState:
        return self.broker.state

    async def requeue(self) -> NoReturn:
        """Send this run again with `X-Taskiq-requeue` incremented, and end this attempt."""
        count = int(self.message.labels.get(REQUEUE_LABEL, 0)) + 1
        limit = TaskOptions.from_labels(self.message.labels).max_requeues
        if limit is not None and count > limit:
            raise TaskRejectedError(
                f"Task {self.message.task_name} ({self.message.task_id}) asked to be requeued again after {limit} "
                "requeues, its max_requeues label; raise the label (None: no limit), or end the run another way."
            )
        self.message.labels[REQUEUE_LABEL] = str(count)
        await self.broker.requeue(self.message)
        raise NoResultError()

    def reject(self) -> NoReturn:
        """End the run as rejected; it is never retried."""
        raise TaskRejectedError(f"Task {self.message.task_name} ({self.message.task_id}) was rejected.")

    async def set_progress(self, current: int | TaskProgress, total: int | None = None, message: str = "") -> None:
        """Report progress; clients read it with `get_progress()`."""
        progress = current if isinstance(current, TaskProgress) else TaskProgress(current, total or 0, message)
        await self.broker.result_backend.set_progress(self.message.task_id, progress)
