"""Running one message: the part every broker shares, in-process or in a pod."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import time
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from taskiq_dependencies import DependencyGraph

from podiq._context import Context
from podiq._labels import TaskOptions
from podiq._message import TaskiqMessage
from podiq._middleware import maybe_await, message_from, overrides
from podiq._result import ResultRecord, TaskiqResult
from podiq._state import TaskiqState
from podiq.exceptions import NoResultError, TaskTimeoutError, UnknownTaskError

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker
    from podiq._decor import AsyncTaskiqDecoratedTask


class Receiver:
    """Executes messages for a broker: arguments, dependencies, timeout, middlewares, result."""

    def __init__(self, broker: AsyncBroker, executor: Executor | None = None) -> None:
        self.broker = broker
        self.executor = executor
        self._graphs: dict[str, DependencyGraph | None] = {}
        #: Plain tasks whose thread is still running (awaited or not).
        self.threads_busy: set[concurrent.futures.Future[Any]] = set()

    async def run(self, message: TaskiqMessage) -> ResultRecord | None:
        """Run the message; None means the task asked for no result (it was requeued)."""
        broker = self.broker
        task = broker.find_task(message.task_name)
        if task is None:
            return ResultRecord.failure(UnknownTaskError(message.task_name, type(broker).__name__), message.labels)
        for middleware in broker.middlewares:
            if overrides(middleware, "pre_execute"):
                message = await message_from(middleware, "pre_execute", message)

        started = time.perf_counter()
        returned: Any = None
        error: BaseException | None = None
        dependencies = None
        try:
            args, kwargs = task.signature.decode_call(message.args, message.kwargs)
            graph = self._graph(task)
            if graph is not None:
                dependencies = graph.async_ctx(
                    {
                        **broker.custom_dependency_context,
                        Context: Context(message, broker),
                        TaskiqState: broker.state,
                    },
                    broker.dependency_overrides or None,
                )
            timeout = TaskOptions.from_labels(message.labels).timeout if "timeout" in message.labels else None
            if timeout is None:
                returned = await self._call(task, args, kwargs, dependencies)
            else:
                # One deadline for resolving dependencies, the call, and whatever it returns to await.
                scope = asyncio.timeout(timeout)
                try:
                    async with scope:
                        returned = await self._call(task, args, kwargs, dependencies)
                except TimeoutError:
                    if not scope.expired():
                        raise  # the task's own TimeoutError, not its deadline
                    raise TaskTimeoutError(
                        f"Task {task.task_name} ran longer than its timeout of {timeout} s."
                    ) from None
        except NoResultError:
            return None
        except BaseException as exc:  # noqa: BLE001 - whatever the task raises is its outcome
            # Whatever the task raises is its outcome, SystemExit and KeyboardInterrupt too:
            # letting them through would stop the caller's event loop and every other run.
            error = exc
        finally:
            if dependencies is not None:
                error = await _tear_down(dependencies, error, task.task_name)
        if error is not None and isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            raise error  # the run itself is being stopped; the broker records that
        execution_time = round(time.perf_counter() - started, 6)

        if error is None:
            try:
                encoded = task.signature.encode_return(returned)
            except Exception as exc:  # noqa: BLE001 - a return value that cannot convert fails the run
                error = exc
        record = (
            ResultRecord(return_value=encoded, execution_time=execution_time, labels=message.labels)
            if error is None
            else ResultRecord.failure(error, message.labels, execution_time)
        )
        await self._after_execute(message, returned, error, execution_time)
        return record

    async def _call(
        self, task: AsyncTaskiqDecoratedTask[Any, Any], args: list[Any], kwargs: dict[str, Any], dependencies: Any
    ) -> Any:
        if dependencies is not None:
            kwargs.update(await dependencies.resolve_kwargs())
        func = task.original_func
        if task.is_async:
            return await func(*args, **kwargs)
        # Plain functions run in the pool so they never block the event loop; copying the
        # context keeps contextvars (e.g. log correlation) visible inside them.
        call = functools.partial(_call_plain, func, *args, **kwargs)
        thread = (self.executor or _default_pool()).submit(contextvars.copy_context().run, call)
        # A thread cannot be stopped: a timed-out or cancelled plain task runs on until it returns.
        self.threads_busy.add(thread)
        thread.add_done_callback(self.threads_busy.discard)
        result = await asyncio.wrap_future(thread)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    def _graph(self, task: AsyncTaskiqDecoratedTask[Any, Any]) -> DependencyGraph | None:
        if task.task_name not in self._graphs:
            if not task.signature.injected:  # nothing to inject: skip building (and its warnings)
                self._graphs[task.task_name] = None
                return None
            graph = DependencyGraph(task.original_func)
            self._graphs[task.task_name] = None if graph.is_empty() else graph
        return self._graphs[task.task_name]

    async def _after_execute(
        self, message: TaskiqMessage, returned: Any, error: BaseException | None, execution_time: float
    ) -> None:
        middlewares = self.broker.middlewares
        if not middlewares:
            return
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=error is not None,
            return_value=returned,
            execution_time=execution_time,
            labels=message.labels,
            error=error,
            task_id=message.task_id,
        )
        if error is not None:
            for middleware in reversed(middlewares):
                if overrides(middleware, "on_error"):
                    await maybe_await(middleware.on_error(message, result, error))
        for middleware in reversed(middlewares):
            if overrides(middleware, "post_execute"):
                await maybe_await(middleware.post_execute(message, result))


@functools.cache
def _default_pool() -> Executor:
    return concurrent.futures.ThreadPoolExecutor(thread_name_prefix="podiq-sync")


def _call_plain(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a plain task in the pool thread.

    asyncio cannot put StopIteration into a Future (the waiter would never wake), so it becomes
    a RuntimeError here, as Python itself does for a coroutine that raises StopIteration.
    """
    try:
        return func(*args, **kwargs)
    except StopIteration as exc:
        raise RuntimeError(f"{_name(func)} raised StopIteration") from exc


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or type(func).__qualname__


async def _tear_down(dependencies: Any, error: BaseException | None, task_name: str) -> BaseException | None:
    """Close the run's dependencies with its outcome; returns the outcome after teardown.

    Generator dependencies see the task's exception (a cancellation too), so `except:` blocks
    roll back. A teardown that fails after the task returned fails the run, with a note saying so.
    """
    exc_info = (type(error), error, error.__traceback__) if error is not None else (None, None, None)
    failures: list[Exception] = []
    # close() stops at the first teardown that raises; closing again goes on with the rest (those
    # already closed are finished and do nothing), so one failing teardown does not leak the others.
    for _ in range(len(dependencies.opened_dependencies) + len(dependencies.sub_contexts) + 1):
        try:
            await dependencies.close(*exc_info)
            break
        except Exception as teardown_error:  # noqa: BLE001 - every teardown error is collected
            failures.append(teardown_error)
    if error is not None or not failures:
        return error
    failures[0].add_note(
        f"Raised while tearing down the dependencies of task {task_name!r} after it returned; "
        "its return value was discarded."
    )
    return failures[0]
