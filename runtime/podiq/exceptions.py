"""Every error podiq raises, under one root.

    TaskiqError
    ├── BrokerError
    │   └── SendTaskError ............... kiq() refused the call
    │       ├── SharedBrokerSendTaskError  a shared task was sent without a broker behind it
    │       ├── UnknownTaskError ........ no task of that name on this broker
    │       ├── InvalidArgumentsError ... arguments do not fit the task's signature (also a TypeError)
    │       ├── SerializationError ...... a value cannot be converted to JSON (also a TypeError)
    │       └── ArgumentsTooLargeError .. arguments too large for a TaskRun, and no Redis to hold them (also a ValueError)
    ├── ResultBackendError
    │   ├── ResultGetError
    │   │   ├── ResultNotReadyError ..... a result field was read before the task finished
    │   │   └── ResultNotFoundError ..... no result is kept under that id (also a KeyError)
    │   ├── ResultSetError
    │   └── ResultIsReadyError
    ├── TaskiqResultTimeoutError ........ waiting for a result took longer than asked
    ├── TaskTimeoutError ................ the task ran past its `timeout` label (also a TimeoutError)
    ├── TaskCancelledError .............. the run was cancelled before it finished
    ├── NoResultError ................... raised inside a task to finish without a result (requeue)
    ├── TaskRejectedError ............... raised inside a task by Context.reject(); never retried
    │   └── TaskBrokerMismatchError ..... a task registered on one broker was given to another
    ├── ListenError
    │   ├── BrokerListenError ........... podiq's brokers have no messages to listen to (also a RuntimeError)
    │   └── SharedBrokerListenError ..... the shared broker has no messages to listen to
    ├── RemoteTaskError ................. a task's exception whose type cannot be rebuilt here
    ├── StoreError ...................... the Redis store of large values failed
    │   ├── StoreUnavailableError ....... Redis cannot be reached, timed out, or refused the credentials
    │   ├── StoreAccessDeniedError ...... Redis refused a key outside this namespace's prefix (ACL)
    │   ├── StoredValueExpiredError ..... a stored value is gone: expired, evicted or deleted
    │   └── StoredValueCorruptError ..... a stored value does not match its size and sha256
    ├── InvalidScheduleError ............ a cron string, time zone or schedule is malformed (also a ValueError)
    ├── InvalidProgressError ............ set_progress() got numbers that are not a progress (also a ValueError)
    ├── ScheduledTaskCancelledError
    └── SecurityError

The names follow taskiq's so that `except` clauses written for taskiq keep working.
"""

from __future__ import annotations


class TaskiqError(Exception):
    """Root of podiq's errors."""


class BrokerError(TaskiqError):
    """A broker could not do what was asked."""


class SendTaskError(BrokerError):
    """A task could not be sent."""


class UnknownTaskError(SendTaskError):
    """No task with this name is registered on the broker."""

    def __init__(self, task_name: str, broker_name: str = "the broker") -> None:
        super().__init__(
            f"Cannot send unknown task to the queue, task name - {task_name}: no task named {task_name!r} "
            f"is registered on {broker_name}. "
            "Decorate the function with @broker.task, or import the module that defines it "
            "before sending it."
        )
        self.task_name = task_name


class SharedBrokerSendTaskError(SendTaskError):
    """A task declared on the shared broker was sent before a real broker was set."""

    def __init__(
        self,
        message: str = "You cannot use kiq directly on shared task without setting the default_broker: "
        "call async_shared_broker.default_broker(broker) first, or send it with kicker().with_broker(broker).",
    ) -> None:
        super().__init__(message)


class InvalidArgumentsError(SendTaskError, TypeError):
    """The arguments passed to kiq() do not match the task's signature."""


class SerializationError(SendTaskError, TypeError):
    """A value cannot be converted to JSON for sending or storing."""


class ArgumentsTooLargeError(SendTaskError, ValueError):
    """A call's arguments are too large to be kept in its TaskRun, and no Redis is configured."""


class ResultBackendError(TaskiqError):
    """A result backend failed."""


class ResultGetError(ResultBackendError):
    """A result could not be read."""


class ResultNotReadyError(ResultGetError):
    """A field of a TaskiqResult was read before the task finished."""


class ResultNotFoundError(ResultGetError, KeyError):
    """The backend keeps no result under that id (a KeyError too, as taskiq's in-memory backend raises)."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its argument, which is a message here, not a key.
        return str(self.args[0]) if self.args else ""


class ResultSetError(ResultBackendError):
    """A result could not be stored."""


class ResultIsReadyError(ResultBackendError):
    """Readiness of a result could not be checked."""


class TaskiqResultTimeoutError(TaskiqError):
    """Waiting for a result took longer than the timeout."""

    def __init__(self, message: str = "Waiting for the task's result timed out.") -> None:
        super().__init__(message)


class TaskTimeoutError(TaskiqError, TimeoutError):
    """The task ran longer than its `timeout` label allows."""


class TaskCancelledError(TaskiqError):
    """The run was cancelled before it finished."""


class NoResultError(TaskiqError):
    """Raised inside a task to end it without storing a result."""


class TaskRejectedError(TaskiqError):
    """Raised inside a task to reject it; a rejected run is never retried."""


class TaskBrokerMismatchError(TaskRejectedError):
    """A task already registered on one broker was registered on another."""


class ListenError(TaskiqError):
    """A broker cannot listen for messages."""


class BrokerListenError(ListenError, RuntimeError):
    """listen() was called on a broker that has no messages to read (a RuntimeError, as taskiq's
    InMemoryBroker raises)."""


class SharedBrokerListenError(ListenError):
    """The shared broker only declares tasks; it has nothing to listen to."""

    def __init__(self, message: str = "Shared broker cannot listen: run tasks on a real broker.") -> None:
        super().__init__(message)


class RemoteTaskError(TaskiqError):
    """A task's exception whose type cannot be rebuilt in this process.

    That is a type from a module the client has not imported, or one that must not be raised
    in the caller (SystemExit, KeyboardInterrupt, StopIteration and other non-`Exception`s). Keeps the remote type's name and module and its traceback, so nothing is lost.
    """

    def __init__(self, type_name: str, module: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{module}.{type_name}: {message}" if module else f"{type_name}: {message}")
        self.type_name = type_name
        self.module = module
        self.message = message
        self.remote_traceback = traceback


class StoreError(TaskiqError):
    """The Redis store of large arguments, results and logs failed."""


class StoreUnavailableError(StoreError):
    """Redis cannot be reached, did not answer in time, or refused the credentials."""


class StoreAccessDeniedError(StoreError):
    """Redis refused the command: the key is outside this namespace's prefix, or the user lacks the right."""


class StoredValueExpiredError(StoreError):
    """A stored value is gone: it expired with its TaskRun's TTL, was evicted or deleted."""


class StoredValueCorruptError(StoreError):
    """A stored value's size or sha256 differs from the reference in the TaskRun."""


class InvalidScheduleError(TaskiqError, ValueError):
    """A schedule's cron string, time zone, time or interval is invalid."""

    #: What was found wrong, field by field, for callers that add their own context.
    problems: str = ""


class InvalidProgressError(TaskiqError, ValueError):
    """A progress report is not whole numbers with 0 <= current <= total."""


class ScheduledTaskCancelledError(TaskiqError):
    """A scheduled task was cancelled by a schedule source's pre_send hook."""


class SecurityError(TaskiqError):
    """Data was refused for security reasons."""
