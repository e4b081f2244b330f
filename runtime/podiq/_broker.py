from __future__ import annotations

import inspect
import os
import weakref
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Self, TypeVar, overload

from podiq._decor import AsyncTaskiqDecoratedTask
from podiq._labels import TaskOptions
from podiq._message import TaskiqMessage
from podiq._middleware import TaskiqMiddleware, maybe_await
from podiq._result_backend import AsyncResultBackend, DummyResultBackend
from podiq._state import TaskiqEvents, TaskiqState
from podiq.exceptions import BrokerError, BrokerListenError, TaskBrokerMismatchError

if TYPE_CHECKING:
    from podiq._schedules import ScheduledTask

P = ParamSpec("P")
R = TypeVar("R")
EventHandler = Callable[[TaskiqState], Awaitable[None] | None]


# Every broker made in this process, so the runtime can find a task by name after importing
# the user's module, whichever broker that module created.
_BROKERS: weakref.WeakSet[AsyncBroker] = weakref.WeakSet()
# Tasks declared on a shared broker (podiq.brokers.shared_broker), which every broker runs.
SHARED_TASKS: dict[str, AsyncTaskiqDecoratedTask[Any, Any]] = {}


def find_registered_task(task_name: str) -> AsyncTaskiqDecoratedTask[Any, Any] | None:
    for broker in list(_BROKERS):
        task = broker.find_task(task_name)
        if task is not None:
            return task
    return None


def default_task_id() -> str:
    """128 random bits as 32 hex digits, like taskiq's uuid4().hex (and valid TaskRun names)."""
    return os.urandom(16).hex()


class AsyncBroker(ABC):
    """Holds the tasks, sends messages, and owns the result backend.

    Subclasses decide only how a message travels (`kick`) and how a run is cancelled; the task
    API above them is the same for every broker.
    """

    #: Whether this process executes tasks (worker events run on startup and shutdown).
    is_worker_process: bool = False
    #: The class `@broker.task` makes.
    decorator_class: type[AsyncTaskiqDecoratedTask[Any, Any]] = AsyncTaskiqDecoratedTask

    def __init__(
        self,
        result_backend: AsyncResultBackend | None = None,
        task_id_generator: Callable[[], str] | None = None,
    ) -> None:
        self.result_backend: AsyncResultBackend = _checked_backend(result_backend or self.default_result_backend())
        self.id_generator = task_id_generator or default_task_id
        self.middlewares: list[TaskiqMiddleware] = []
        self.state = TaskiqState()
        self.event_handlers: defaultdict[TaskiqEvents, list[EventHandler]] = defaultdict(list)
        self.custom_dependency_context: dict[Any, Any] = {}
        self.dependency_overrides: dict[Any, Any] = {}
        self.local_task_registry: dict[str, AsyncTaskiqDecoratedTask[Any, Any]] = {}
        self.is_started = False
        self._stopped = False
        _BROKERS.add(self)

    def default_result_backend(self) -> AsyncResultBackend:
        """The backend of a broker made without one: as in taskiq, it stores nothing."""
        return DummyResultBackend()

    # -- sending ------------------------------------------------------------------------------

    @abstractmethod
    async def kick(self, message: TaskiqMessage) -> None:
        """Send a message to be executed."""

    async def requeue(self, message: TaskiqMessage) -> None:
        """Send a run again (Context.requeue); the same task_id keeps its waiters."""
        await self.kick(message)

    async def cancel(self, task_id: str) -> None:
        raise BrokerError(f"{type(self).__name__} cannot cancel runs.")

    def listen(self) -> NoReturn:
        """taskiq's worker loop reads messages here; podiq's brokers have none to read."""
        raise BrokerListenError(
            f"{type(self).__name__} cannot listen: podiq has no worker process that reads messages. "
            "In-process, kiq() runs the task on this event loop; on Kubernetes the operator runs each call."
        )

    # -- tasks --------------------------------------------------------------------------------

    @overload
    def task(self, task_name: Callable[P, R]) -> AsyncTaskiqDecoratedTask[P, R]: ...

    @overload
    def task(
        self, task_name: str | None = None, **labels: Any
    ) -> Callable[[Callable[P, R]], AsyncTaskiqDecoratedTask[P, R]]: ...

    def task(self, task_name: Any = None, **labels: Any) -> Any:
        """Register a function as a task: `@broker.task`, `@broker.task()`, `@broker.task("name", label=...)`."""
        if callable(task_name):
            return self.register_task(task_name)

        def decorator(func: Callable[P, R]) -> AsyncTaskiqDecoratedTask[P, R]:
            return self.register_task(func, task_name, **labels)

        return decorator

    def register_task(
        self, func: Callable[P, R], task_name: str | None = None, **labels: Any
    ) -> AsyncTaskiqDecoratedTask[P, R]:
        if isinstance(func, AsyncTaskiqDecoratedTask) and func.broker is not self:
            # Another broker's task object, not a function: wrapping it would send through that broker.
            self._register_task(task_name or func.task_name, func)
        name = _task_name(func, task_name)
        TaskOptions.checked(labels)
        existing = self.local_task_registry.get(name)
        if existing is not None and not _same_function(existing.original_func, func):
            twin = " (another function object of that name: a closure or lambda made twice)"
            raise BrokerError(
                f"Task name {name!r} is already used by {_origin(existing.original_func)}"
                f"{twin if _origin(existing.original_func) == _origin(func) else ''}; give "
                f"{_origin(func)} another name with @broker.task(task_name=...)."
            )
        task = self.decorator_class(broker=self, task_name=name, original_func=func, labels=labels)
        self._register_task(name, task)
        return task

    def _register_task(self, task_name: str, task: AsyncTaskiqDecoratedTask[Any, Any]) -> None:
        """Put a task in this broker's registry; taskiq's hook for subclasses that keep it elsewhere.

        A task made by another broker is refused, as in taskiq: it would send through that one.
        """
        if task.broker is not self:
            raise TaskBrokerMismatchError(
                f"Task already has a different broker ({task.broker!r}): {task_name!r} was declared on it; "
                f"declare the function on {self!r} with @broker.task, or send it there with kicker().with_broker()."
            )
        self.local_task_registry[task_name] = task

    def find_task(self, task_name: str) -> AsyncTaskiqDecoratedTask[Any, Any] | None:
        return self.local_task_registry.get(task_name) or SHARED_TASKS.get(task_name)

    def get_all_tasks(self) -> dict[str, AsyncTaskiqDecoratedTask[Any, Any]]:
        return dict(self.local_task_registry)

    # -- configuration ------------------------------------------------------------------------

    def with_result_backend(self, result_backend: AsyncResultBackend) -> Self:
        self.result_backend = _checked_backend(result_backend)
        return self

    def with_id_generator(self, task_id_generator: Callable[[], str]) -> Self:
        self.id_generator = task_id_generator
        return self

    def with_middlewares(self, *middlewares: TaskiqMiddleware) -> Self:
        self.add_middlewares(*middlewares)
        return self

    def add_middlewares(self, *middlewares: TaskiqMiddleware) -> None:
        for middleware in middlewares:
            if isinstance(middleware, type) and issubclass(middleware, TaskiqMiddleware):
                raise BrokerError(
                    f"{middleware.__name__} is a middleware class; pass an instance, {middleware.__name__}()."
                )
            if not isinstance(middleware, TaskiqMiddleware):
                raise BrokerError(f"{middleware!r} is not a TaskiqMiddleware; subclass podiq.TaskiqMiddleware.")
            middleware.set_broker(self)
            self.middlewares.append(middleware)

    def add_dependency_context(self, new_context: dict[Any, Any]) -> None:
        """Values that tasks can receive with TaskiqDepends(), keyed by type."""
        if not isinstance(new_context, dict):
            raise BrokerError(f"add_dependency_context() takes a dict of {{type: value}}, not {new_context!r}.")
        self.custom_dependency_context.update(new_context)

    def on_event(self, *events: TaskiqEvents) -> Callable[[EventHandler], EventHandler]:
        def decorator(handler: EventHandler) -> EventHandler:
            for event in events:
                self.add_event_handler(event, handler)
            return handler

        return decorator

    def add_event_handler(self, event: TaskiqEvents, handler: EventHandler) -> None:
        if not isinstance(event, TaskiqEvents):  # any other key would never fire
            names = ", ".join(f"TaskiqEvents.{e.name}" for e in TaskiqEvents)
            raise BrokerError(f"{event!r} is not a broker event; use one of {names}.")
        if not callable(handler):
            raise BrokerError(f"Event handler {handler!r} is not callable; pass a function taking the state.")
        self.event_handlers[event].append(handler)

    # -- lifetime -----------------------------------------------------------------------------

    async def apply_label_schedules(self, schedules: list[ScheduledTask]) -> bool:
        """Make the tasks' `schedule` labels this broker's own way (CronJobs, say) and say so;
        False, the default, leaves them to an in-process TaskiqScheduler."""
        return False

    async def startup(self) -> None:
        if self.is_started:
            return
        events = [TaskiqEvents.CLIENT_STARTUP] + ([TaskiqEvents.WORKER_STARTUP] if self.is_worker_process else [])
        for event in events:
            for handler in self.event_handlers[event]:
                await maybe_await(handler(self.state))
        for middleware in self.middlewares:
            await maybe_await(middleware.startup())
        await self.result_backend.startup()
        self.is_started = True
        self._stopped = False

    async def shutdown(self) -> None:
        # As in taskiq, shutdown handlers run even when startup() never did (a test that never
        # started the broker); a second shutdown() in a row does nothing.
        if self._stopped:
            return
        events = ([TaskiqEvents.WORKER_SHUTDOWN] if self.is_worker_process else []) + [TaskiqEvents.CLIENT_SHUTDOWN]
        for event in events:
            for handler in self.event_handlers[event]:
                await maybe_await(handler(self.state))
        for middleware in self.middlewares:
            await maybe_await(middleware.shutdown())
        await self.result_backend.shutdown()
        self.is_started = False
        self._stopped = True

    async def __aenter__(self) -> None:
        # None, as taskiq's broker gives: `async with broker:` starts and stops it.
        await self.startup()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()


def _checked_backend(backend: Any) -> AsyncResultBackend:
    missing = [m for m in ("set_result", "get_result", "is_result_ready", "wait_for_result") if not hasattr(backend, m)]
    if missing:
        raise BrokerError(
            f"{backend!r} is not a result backend (it has no {', '.join(missing)}); subclass podiq.AsyncResultBackend."
        )
    return backend  # type: ignore[no-any-return]  # a backend written for taskiq returns its own objects


def _origin(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or type(func).__module__
    return f"{module}.{getattr(func, '__qualname__', None) or type(func).__qualname__}"


def _task_name(func: Callable[..., Any], task_name: Any) -> str:
    if task_name is not None and (not isinstance(task_name, str) or not task_name.strip()):
        raise BrokerError(f"Task name {task_name!r} is not a non-empty string; pass a name such as 'app.tasks:add'.")
    if not callable(func):
        raise BrokerError(f"{func!r} is not callable; @broker.task decorates a function.")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise BrokerError(
            f"{_origin(func)} is a generator function, and a task's result must be one value; "
            "return a list instead of yielding items."
        )
    if task_name:
        return task_name
    if not isinstance(getattr(func, "__name__", None), str) or not isinstance(getattr(func, "__module__", None), str):
        raise BrokerError(
            f"{func!r} has no __name__ and __module__ to name the task by (a callable object or a "
            "functools.partial); name it with @broker.task(task_name=...)."
        )
    return f"{func.__module__}:{func.__name__}"


def _same_function(registered: Callable[..., Any], func: Callable[..., Any]) -> bool:
    """Whether `func` may take over a task name: the same function, or the same module-level
    function made again (a reloaded module). Two closures or lambdas share a qualified name
    without being the same task."""
    if registered is func:
        return True
    qualname = getattr(func, "__qualname__", "")
    return "<locals>" not in qualname and "<lambda>" not in qualname and _origin(registered) == _origin(func)
