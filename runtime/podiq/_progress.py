from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from podiq.exceptions import InvalidProgressError


class TaskState(str, enum.Enum):
    """A task's state as ProgressTracker reports it, as in taskiq (any other string is allowed too)."""

    STARTED = "STARTED"
    FAILURE = "FAILURE"
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"


class TaskProgress(BaseModel):
    """How far a running task has got: `current` of `total`, with an optional message.

    taskiq's ProgressTracker reports a `state` and its `meta` data instead; such progress has
    `current` and `total` 0 unless given.
    """

    current: int = Field(ge=0)
    total: int = Field(ge=0)
    message: str = ""
    state: TaskState | str | None = None
    meta: Any = None

    def __init__(self, current: int | None = None, total: int | None = None, message: str = "", **data: Any) -> None:
        if data.get("state") is not None:
            data.setdefault("current", 0)
            data.setdefault("total", 0)
        if current is not None:
            data["current"] = current
        if total is not None:
            data["total"] = total
        try:
            super().__init__(message=data.pop("message", message), **data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'progress'}: {e['msg']}" for e in exc.errors())
            raise InvalidProgressError(
                f"Invalid progress current={current!r}, total={total!r}: {problems}. Pass whole numbers with "
                "0 <= current <= total, or total=0 while the total is unknown."
            ) from None

    @model_validator(mode="after")
    def _current_within_total(self) -> TaskProgress:
        if self.total and self.current > self.total:
            raise ValueError(f"progress current={self.current} is larger than total={self.total}")
        return self

    def __class_getitem__(cls, item: Any) -> Any:
        """`TaskProgress[Any]`, as the spec's signatures write it, is TaskProgress itself."""
        return cls

    @property
    def fraction(self) -> float:
        """Share done, from 0.0 to 1.0 (0.0 while the total is unknown)."""
        return self.current / self.total if self.total else 0.0

    def __str__(self) -> str:
        text = f"{self.current}/{self.total}"
        return f"{text} {self.message}" if self.message else text
