"""podiq: Python tasks with the taskiq API, in-process or on Kubernetes (every run a TaskRun)."""

from taskiq_dependencies import Depends as TaskiqDepends

from podiq._broker import AsyncBroker
from podiq._context import Context
from podiq._decor import AsyncTaskiqDecoratedTask
from podiq._exception_data import ExceptionData
from podiq._gather import gather
from podiq._inmemory import InMemoryBroker, InMemoryResultBackend
from podiq._kicker import AsyncKicker
from podiq._labels import TaskOptions
from podiq._message import BrokerMessage, TaskiqMessage
from podiq._middleware import TaskiqMiddleware
from podiq._progress import TaskProgress
from podiq._result import ResultRecord, TaskiqResult
from podiq._result_backend import AsyncResultBackend
from podiq._retries import SimpleRetryMiddleware, SmartRetryMiddleware
from podiq._scheduler import TaskiqScheduler
from podiq._schedules import CreatedSchedule, CronSpec, InMemoryScheduleSource, ScheduledTask, ScheduleSource
from podiq._shared_broker import async_shared_broker
from podiq._state import TaskiqEvents, TaskiqState
from podiq._task import AsyncTaskiqTask
from podiq._version import __version__
from podiq.exceptions import (
    BrokerError,
    InvalidArgumentsError,
    InvalidProgressError,
    InvalidScheduleError,
    NoResultError,
    RemoteTaskError,
    ResultBackendError,
    ResultGetError,
    ResultIsReadyError,
    ResultNotReadyError,
    ResultSetError,
    ScheduledTaskCancelledError,
    SecurityError,
    SendTaskError,
    SerializationError,
    TaskCancelledError,
    TaskiqError,
    TaskiqResultTimeoutError,
    TaskRejectedError,
    TaskTimeoutError,
    UnknownTaskError,
)

__all__ = [
    "AsyncBroker",
    "AsyncKicker",
    "AsyncResultBackend",
    "AsyncTaskiqDecoratedTask",
    "AsyncTaskiqTask",
    "BrokerError",
    "BrokerMessage",
    "Context",
    "CreatedSchedule",
    "CronSpec",
    "ExceptionData",
    "InMemoryBroker",
    "InMemoryResultBackend",
    "InMemoryScheduleSource",
    "InvalidArgumentsError",
    "InvalidProgressError",
    "InvalidScheduleError",
    "NoResultError",
    "RemoteTaskError",
    "ResultBackendError",
    "ResultGetError",
    "ResultIsReadyError",
    "ResultNotReadyError",
    "ResultRecord",
    "ResultSetError",
    "ScheduleSource",
    "ScheduledTask",
    "ScheduledTaskCancelledError",
    "SecurityError",
    "SendTaskError",
    "SerializationError",
    "SimpleRetryMiddleware",
    "SmartRetryMiddleware",
    "TaskCancelledError",
    "TaskOptions",
    "TaskProgress",
    "TaskRejectedError",
    "TaskTimeoutError",
    "TaskiqDepends",
    "TaskiqError",
    "TaskiqEvents",
    "TaskiqMessage",
    "TaskiqMiddleware",
    "TaskiqResult",
    "TaskiqResultTimeoutError",
    "TaskiqScheduler",
    "TaskiqState",
    "UnknownTaskError",
    "__version__",
    "async_shared_broker",
    "gather",
]
