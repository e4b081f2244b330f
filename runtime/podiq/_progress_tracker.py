"""taskiq's ProgressTracker: a dependency that reports a state and its data as progress."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from taskiq_dependencies import Depends

from podiq._context import Context
from podiq._progress import TaskProgress, TaskState

ProgressType = TypeVar("ProgressType")


class TrackedProgress(BaseModel):
    """What ProgressTracker.set_progress() is given, checked as taskiq's TaskProgress model checks it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    state: TaskState | str
    meta: Any = None


class ProgressTracker(Generic[ProgressType]):
    """`progress: ProgressTracker[T] = TaskiqDepends()` in a task's signature, as in taskiq.

    `set_progress(state, meta)` stores a TaskProgress with that `state` and `meta` (the last
    meta is kept when none is given); clients read it with `get_progress()`.
    """

    def __init__(self, context: Context = Depends()) -> None:
        self.context = context

    async def set_progress(self, state: TaskState | str, meta: ProgressType | None = None) -> None:
        if meta is None:
            previous = await self.get_progress()
            meta = previous.meta if previous else None
        # A state that is neither a TaskState nor a string raises pydantic's ValidationError, as in taskiq.
        checked = TrackedProgress(state=state, meta=meta)
        progress = TaskProgress(state=checked.state, meta=checked.meta)
        await self.context.broker.result_backend.set_progress(self.context.message.task_id, progress)

    async def get_progress(self) -> TaskProgress | None:
        return await self.context.broker.result_backend.get_progress(self.context.message.task_id)
