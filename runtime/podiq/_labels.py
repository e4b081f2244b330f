"""The labels podiq itself understands, parsed once and checked when a task is sent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podiq._problems import problems
from podiq.exceptions import InvalidArgumentsError

REQUEUE_LABEL = "X-Taskiq-requeue"
RETRIES_LABEL = "_retries"
SCHEDULE_ID_LABEL = "schedule_id"
#: A task label that stays with the task and is never sent: exception types are not data.
EXCEPTION_TYPES_LABEL = "types_of_exceptions"
#: Read from the task by LabelScheduleSource; its entries (datetimes included) are never sent.
SCHEDULE_LABEL = "schedule"
LOCAL_LABELS = frozenset({EXCEPTION_TYPES_LABEL, SCHEDULE_LABEL})

#: Exceptions that end a run for good, whatever the retry policy says.
NEVER_RETRIED = {"TaskRejectedError", "TaskCancelledError"}


class TaskOptions(BaseModel):
    """Execution options carried in a task's labels (`timeout`, `retry_on_error`, `max_retries`)."""

    model_config = ConfigDict(extra="ignore")

    timeout: float | None = Field(default=None, gt=0, description="Seconds the task may run.")
    retry_on_error: bool = False
    max_retries: int = Field(default=3, ge=0, description="Retries after the first attempt.")

    max_requeues: int | None = Field(
        default=100, ge=0, description="Context.requeue() calls allowed per run; None: no limit."
    )

    @classmethod
    def checked(cls, labels: dict[str, Any]) -> TaskOptions:
        """The options, once every label is known to convert to JSON (labels travel so on Kubernetes)."""
        from podiq._serialization import to_json_compatible

        for name, value in labels.items():
            if name not in LOCAL_LABELS:
                to_json_compatible(value, what=f"Label {name!r}")
        return cls.from_labels(labels)

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> TaskOptions:
        try:
            return cls.model_validate(labels)
        except ValidationError as exc:
            raise InvalidArgumentsError(f"Invalid task labels: {problems(exc, noun='label')}.") from None

    def should_retry(self, error_type: str | None, retries_done: int) -> bool:
        return (
            self.retry_on_error
            and error_type is not None
            and error_type not in NEVER_RETRIED
            and retries_done < self.max_retries
        )
