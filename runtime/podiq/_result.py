from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from podiq._exception_data import ExceptionData
from podiq._progress import TaskProgress
from podiq._serialization import from_json_compatible, to_json_compatible
from podiq._timeouts import wait_seconds
from podiq.exceptions import ResultGetError, ResultNotReadyError

if TYPE_CHECKING:
    from podiq._task import AsyncTaskiqTask

ReturnType = TypeVar("ReturnType")


class ResultRecord(BaseModel):
    """A finished run as stored by a result backend: JSON only, never pickle."""

    is_err: bool = False
    return_value: Any = None
    execution_time: float = 0.0
    labels: dict[str, Any] = Field(default_factory=dict)
    error: ExceptionData | None = None
    log: str | None = None

    @classmethod
    def failure(cls, error: BaseException, labels: dict[str, Any], execution_time: float = 0.0) -> ResultRecord:
        """The record of a run that ended in `error`."""
        return cls(is_err=True, execution_time=execution_time, labels=labels, error=ExceptionData.from_exception(error))


class TaskiqResult(Generic[ReturnType]):
    """The outcome of a task run.

    Two roles, one type (as the API contract asks):
    - a *container* of a finished run: `is_err`, `return_value`, `execution_time`, `labels`,
      `error`, `log`, `raise_for_error()`;
    - a *handle* returned by `task.kiq()`: `task_id`, `is_ready()`, `wait_result()` and `await`,
      which return the task's value or raise its exception, and then fill the container fields.
    """

    __slots__ = (
        "_task",
        "_task_id",
        "_complete",
        "_is_err",
        "_return_value",
        "_execution_time",
        "_labels",
        "_error",
        "_log",
    )

    def __init__(
        self,
        *,
        is_err: bool = False,
        return_value: Any = None,
        execution_time: float = 0.0,
        labels: dict[str, Any] | None = None,
        error: BaseException | None = None,
        log: str | None = None,
        task_id: str | None = None,
    ) -> None:
        self._task: AsyncTaskiqTask[ReturnType] | None = None
        self._task_id = task_id
        self._complete = True
        self._is_err = is_err
        self._return_value = return_value
        self._execution_time = execution_time
        self._labels = labels if labels is not None else {}
        self._error = error
        self._log = log

    @classmethod
    def pending(cls, task: AsyncTaskiqTask[ReturnType]) -> TaskiqResult[ReturnType]:
        """A handle for a run that may not have finished yet."""
        handle: TaskiqResult[ReturnType] = cls(task_id=task.task_id)
        handle._task = task
        handle._complete = False
        return handle

    @classmethod
    def from_record(cls, record: ResultRecord, return_type: Any = Any, task_id: str | None = None) -> TaskiqResult[Any]:
        error = record.error.to_exception() if record.error is not None else None
        value = None
        if not record.is_err:
            try:
                value = from_json_compatible(record.return_value, return_type, what="The task's return value")
            except Exception as exc:  # noqa: BLE001 - an unreadable result is a failed container
                # A finished container that failed, not an exception: waiting (and gather) never raise.
                error = ResultGetError(f"Result of task {task_id} cannot be read as {return_type!r}: {exc}")
        return cls(
            is_err=record.is_err or error is not None,
            return_value=value,
            execution_time=record.execution_time,
            labels=record.labels,
            error=error,
            log=record.log,
            task_id=task_id,
        )

    # -- the handle ---------------------------------------------------------------------------

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def task(self) -> AsyncTaskiqTask[ReturnType]:
        """The AsyncTaskiqTask behind this handle (for get_progress, cancel, get_result)."""
        if self._task is None:
            raise ResultGetError("This TaskiqResult is a finished container, not bound to a task.")
        return self._task

    async def is_ready(self) -> bool:
        if self._complete:
            return True
        return await self.task.is_ready()

    async def wait_result(self, timeout: float | None = None, check_interval: float = 0.5) -> ReturnType:
        """Wait for the run, then return its value or raise its exception."""
        if timeout is not None:
            wait_seconds(timeout, "TaskiqResult.wait_result()")
        if not self._complete:
            finished = await self.task.wait_result(
                check_interval=check_interval, timeout=-1.0 if timeout is None else timeout
            )
            self._fill(finished)
        self.raise_for_error()
        return self._return_value  # type: ignore[no-any-return]  # the stored value is typed by the task

    def __await__(self) -> Generator[Any, None, ReturnType]:
        return self.wait_result().__await__()

    async def get_progress(self) -> TaskProgress | None:
        return await self.task.get_progress()

    async def cancel(self) -> None:
        """Ask the broker to stop the run (a podiq addition; taskiq has no cancel)."""
        await self.task.cancel()

    def _fill(self, other: TaskiqResult[Any]) -> None:
        self._is_err = other._is_err
        self._return_value = other._return_value
        self._execution_time = other._execution_time
        self._labels = other._labels
        self._error = other._error
        self._log = other._log
        self._complete = True

    # -- the container ------------------------------------------------------------------------

    def _require_complete(self, field: str) -> None:
        if not self._complete:
            raise ResultNotReadyError(
                f"TaskiqResult.{field} of task {self._task_id} is not known yet: the task has not "
                "finished. Wait for it first with `await result` or `await result.wait_result()`."
            )

    @property
    def is_err(self) -> bool:
        self._require_complete("is_err")
        return self._is_err

    @property
    def return_value(self) -> ReturnType:
        self._require_complete("return_value")
        return self._return_value  # type: ignore[no-any-return]  # the stored value is typed by the task

    @property
    def execution_time(self) -> float:
        self._require_complete("execution_time")
        return self._execution_time

    @property
    def labels(self) -> dict[str, Any]:
        self._require_complete("labels")
        return self._labels

    @property
    def error(self) -> BaseException | None:
        self._require_complete("error")
        return self._error

    @property
    def log(self) -> str | None:
        self._require_complete("log")
        return self._log

    def raise_for_error(self) -> TaskiqResult[ReturnType]:
        """Raise the task's exception if it failed; otherwise return self."""
        self._require_complete("raise_for_error()")
        if self._is_err and self._error is not None:
            raise self._error
        return self

    # -- JSON, as taskiq's pydantic TaskiqResult offers it ---------------------------------------

    def to_record(self) -> ResultRecord:
        """This finished result as JSON data: the error as podiq's exception data, never pickle."""
        self._require_complete("to_record()")
        return ResultRecord(
            is_err=self._is_err,
            return_value=to_json_compatible(self._return_value, what="The result's return value"),
            execution_time=self._execution_time,
            labels=self._labels,
            error=ExceptionData.from_exception(self._error) if self._error is not None else None,
            log=self._log,
        )

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """The fields as a dict (pydantic's `model_dump` arguments); see `to_record()`."""
        return self.to_record().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        """The fields as JSON text (pydantic's `model_dump_json` arguments); see `to_record()`."""
        return self.to_record().model_dump_json(**kwargs)

    @classmethod
    def model_validate(cls, obj: Any, return_type: Any = Any) -> TaskiqResult[Any]:
        """A result from what `model_dump()` gave; the error is rebuilt as `wait_result()` does."""
        if isinstance(obj, TaskiqResult):
            return obj
        return cls.from_record(ResultRecord.model_validate(obj), return_type)

    @classmethod
    def model_validate_json(cls, data: str | bytes, return_type: Any = Any) -> TaskiqResult[Any]:
        """A result from what `model_dump_json()` gave; the error is rebuilt as `wait_result()` does."""
        return cls.from_record(ResultRecord.model_validate_json(data), return_type)

    def __repr__(self) -> str:
        if not self._complete:
            return f"TaskiqResult(task_id={self._task_id!r}, pending)"
        return (
            f"TaskiqResult(task_id={self._task_id!r}, is_err={self._is_err}, "
            f"return_value={self._return_value!r}, execution_time={self._execution_time})"
        )
