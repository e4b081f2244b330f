"""The in-process broker: tasks run on this event loop, results wake their waiters at once."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from podiq._broker import AsyncBroker
from podiq._labels import RETRIES_LABEL
from podiq._message import TaskiqMessage
from podiq._middleware import maybe_await, overrides
from podiq._progress import TaskProgress
from podiq._receiver import Receiver
from podiq._result import ResultRecord, TaskiqResult
from podiq._result_backend import AsyncResultBackend
from podiq._retries import decide_retry
from podiq.exceptions import (
    BrokerError,
    ResultNotFoundError,
    ResultSetError,
    SendTaskError,
    TaskCancelledError,
    TaskiqResultTimeoutError,
    UnknownTaskError,
)

logger = logging.getLogger("podiq.inmemory")


class InMemoryResultBackend(AsyncResultBackend):
    """Results and progress in a dict; `max_stored_results` (-1: no limit) drops the oldest
    results, and the progress of their runs with them.

    The broker announces each run it starts (`expect`), so waiting for a run that is neither
    finished nor under way (its result was dropped, or it was never sent) fails at once
    instead of waiting forever.
    """

    def __init__(self, max_stored_results: int = -1) -> None:
        self.max_stored_results = check_count("max_stored_results", max_stored_results, minimum=0, unlimited=-1)
        self.results: dict[str, ResultRecord] = {}
        self.progress: dict[str, TaskProgress] = {}
        self._waiters: dict[str, list[asyncio.Future[ResultRecord]]] = {}
        # Ids of runs under way; None until a broker announces one (a backend used on its own
        # waits for any id).
        self._expected: set[str] | None = None

    def expect(self, task_id: str) -> None:
        """A run of `task_id` starts: forget an earlier run's result and progress under the same id."""
        if self._expected is None:
            self._expected = set()
        self._expected.add(task_id)
        self.results.pop(task_id, None)
        self.progress.pop(task_id, None)

    def still_running(self, task_id: str) -> None:
        """An attempt's failure was stored but the run goes on (a retry): keep waiting allowed."""
        if self._expected is not None:
            self._expected.add(task_id)

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        self.results[task_id] = result
        # A finished run's progress stays readable as in taskiq, for as long as its result is kept.
        if 0 <= self.max_stored_results < len(self.results):
            dropped = next(iter(self.results))
            del self.results[dropped]
            self.progress.pop(dropped, None)
        if self._expected is not None:
            self._expected.discard(task_id)
        for waiter in self._waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(result)

    def _missing(self, task_id: str, *, waiting: bool = False) -> ResultNotFoundError:
        known = "no run of it is under way and" if waiting else "it has not finished, or"
        dropped = (
            f"; or its result was dropped, as max_stored_results={self.max_stored_results} keeps only the newest "
            "results (raise it, or pass -1 for no limit)"
            if self.max_stored_results >= 0
            else ""
        )
        return ResultNotFoundError(f"No result for task {task_id}: {known} it was never sent to this broker{dropped}.")

    async def is_result_ready(self, task_id: str) -> bool:
        # Yield once, as a network round trip would, so runs that can finish now do.
        await asyncio.sleep(0)
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        try:
            return self.results[task_id]
        except KeyError:
            raise self._missing(task_id) from None

    async def set_progress(self, task_id: str, progress: TaskProgress) -> None:
        self.progress[task_id] = progress

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        return self.progress.get(task_id)

    async def wait_for_result(
        self,
        task_id: str,
        timeout: float | None = None,
        check_interval: float = 0.2,
        with_logs: bool = False,
    ) -> ResultRecord:
        record = self.results.get(task_id)
        if record is not None:
            return record
        if self._expected is not None and task_id not in self._expected:
            raise self._missing(task_id, waiting=True)
        waiter: asyncio.Future[ResultRecord] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(task_id, [])
        waiters.append(waiter)
        # A run that waits for another gives its max_async_tasks slot back meanwhile: holding it,
        # a run waiting for the runs it sent would deadlock once every slot waits.
        slot = _HELD_SLOT.get()
        if slot is not None:
            slot.wait_starts()
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TaskiqResultTimeoutError(f"Task {task_id} did not finish within {timeout} s.") from None
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(task_id, None)
            if slot is not None:
                await slot.wait_ends()


class _Slot:
    """One run's place under max_async_tasks, given back while the run (or any task it started)
    waits for a result and taken again when the last of those waits ends."""

    def __init__(self, limit: asyncio.Semaphore) -> None:
        self.limit = limit
        self.held = self.taking = self.closed = False
        self.waiting = 0

    async def take(self) -> None:
        await self.limit.acquire()
        self.held = True

    def wait_starts(self) -> None:
        self.waiting += 1
        if self.held:
            self.held = False
            self.limit.release()

    async def wait_ends(self) -> None:
        self.waiting -= 1
        if self.waiting or self.closed or self.held or self.taking:
            return
        self.taking = True
        try:
            await self.limit.acquire()
        finally:
            self.taking = False
        if self.closed or self.waiting:  # needed no more (the run ended, or waits again)
            self.limit.release()
        else:
            self.held = True

    def close(self) -> None:
        self.closed = True
        if self.held:
            self.held = False
            self.limit.release()


_HELD_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("podiq_held_slot", default=None)


class InMemoryBroker(AsyncBroker):
    """Runs tasks concurrently on the current event loop; plain functions in a thread pool.

    `max_async_tasks` bounds how many runs execute at once (None: no bound); the rest wait in
    order. `wait_all()` returns when every sent run has finished. With `await_inplace=True`,
    `kiq()` returns only once the run has finished (as in taskiq's testing guide).
    """

    is_worker_process = True

    def __init__(
        self,
        *,
        max_async_tasks: int | None = None,
        sync_tasks_pool_size: int | None = None,
        max_stored_results: int = -1,
        result_backend: AsyncResultBackend | None = None,
        task_id_generator: Callable[[], str] | None = None,
        shutdown_timeout: float | None = 30.0,
        await_inplace: bool = False,
    ) -> None:
        #: Run each task to its end inside kiq() (taskiq's testing mode) instead of in the background.
        self.await_inplace = await_inplace
        self._max_stored_results = check_count("max_stored_results", max_stored_results, minimum=0, unlimited=-1)
        super().__init__(result_backend=result_backend, task_id_generator=task_id_generator)
        self._pool_size = check_count(
            "sync_tasks_pool_size", sync_tasks_pool_size, minimum=1, unlimited=None, meaning="the default size"
        )
        self.executor = self._new_executor()
        self.receiver = Receiver(self, self.executor)
        self.max_async_tasks = check_count("max_async_tasks", max_async_tasks, minimum=1, unlimited=None)
        #: Seconds shutdown() waits for runs under way before cancelling them (None: no limit).
        self.shutdown_timeout = check_seconds("shutdown_timeout", shutdown_timeout)
        # Made on first use on each event loop, so a broker built at import time works on any loop.
        self._limit: asyncio.Semaphore | None = None
        self._limit_loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel_at_start: set[str] = set()

    def default_result_backend(self) -> AsyncResultBackend:
        return InMemoryResultBackend(self._max_stored_results)

    async def kick(self, message: TaskiqMessage) -> None:
        if self.find_task(message.task_name) is None:
            raise UnknownTaskError(message.task_name, "this InMemoryBroker")
        if message.task_id in self._running:
            raise SendTaskError(
                f"Task id {message.task_id!r} is already in use by a run that has not finished; "
                "wait for that run first, or send this one with another id."
            )
        await self._start(message)

    async def requeue(self, message: TaskiqMessage) -> None:
        await self._start(message)  # the same id, on purpose: its waiters wait for the new run

    async def _start(self, message: TaskiqMessage) -> None:
        if isinstance(self.result_backend, InMemoryResultBackend):
            self.result_backend.expect(message.task_id)
        if self.await_inplace:
            await self._process(message)
            return
        self._running[message.task_id] = asyncio.create_task(self._process(message))

    async def cancel(self, task_id: str) -> None:
        run = self._running.get(task_id)
        if run is None:
            return
        coro = run.get_coro()
        if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            # A task cancelled before its first step never runs its code, so nothing would store
            # the cancellation and waiters would hang: let the run cancel itself when it starts.
            self._cancel_at_start.add(task_id)
        else:
            run.cancel()

    async def wait_all(self) -> None:
        """Wait until every run sent so far (and every run they send) has finished."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def shutdown(self) -> None:
        """Wait up to `shutdown_timeout` s for the runs under way, cancel the rest, then stop."""
        await self._finish_runs(self.shutdown_timeout)
        await super().shutdown()
        if self.receiver.threads_busy:
            logger.warning(
                "%d plain tasks are still running in their threads, which Python cannot stop; the process "
                "exits only once they return.",
                len(self.receiver.threads_busy),
            )
        self.executor.shutdown(wait=False, cancel_futures=True)
        # A fresh pool (its threads start on first use), so the broker can be started again.
        self.executor = self.receiver.executor = self._new_executor()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:  # the caller is failing: do not hold its exception back for the runs
            await self._finish_runs(0, f"the `async with` block raised {type(exc).__name__}")
        await self.shutdown()

    async def _finish_runs(self, timeout: float | None, reason: str | None = None) -> None:
        try:
            await asyncio.wait_for(self.wait_all(), timeout)
        except TimeoutError:
            pass
        if not self._running:
            return
        logger.warning(
            "InMemoryBroker is shutting down and cancels %d runs still under way (%s): %s.",
            len(self._running),
            ", ".join(sorted(self._running)[:5]),
            reason or f"they did not finish within shutdown_timeout={timeout} s; raise it to let them finish",
        )
        while self._running:
            for task_id in list(self._running):
                await self.cancel(task_id)
            await asyncio.wait(list(self._running.values()))

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="podiq-sync")

    async def _process(self, message: TaskiqMessage) -> None:
        try:
            await self._store(await self._outcome(message), message)
        finally:
            if self._running.get(message.task_id) is asyncio.current_task():
                del self._running[message.task_id]

    async def _outcome(self, message: TaskiqMessage) -> ResultRecord | None:
        """The run's record (None when it was requeued); never raises, so no waiter hangs."""
        try:
            if message.task_id in self._cancel_at_start:
                self._cancel_at_start.discard(message.task_id)
                raise asyncio.CancelledError
            if self.max_async_tasks is None:
                _HELD_SLOT.set(None)  # not the slot of the run that sent this one
                record = await self._run_with_retries(message)
            else:
                loop = asyncio.get_running_loop()
                if self._limit is None or self._limit_loop is not loop:
                    self._limit, self._limit_loop = asyncio.Semaphore(self.max_async_tasks), loop
                slot = _Slot(self._limit)
                await slot.take()
                token = _HELD_SLOT.set(slot)
                try:
                    record = await self._run_with_retries(message)
                finally:
                    _HELD_SLOT.reset(token)
                    slot.close()
        except asyncio.CancelledError:
            record = ResultRecord.failure(TaskCancelledError(f"Task {message.task_id} was cancelled."), message.labels)
        except BaseException as exc:  # noqa: BLE001 - e.g. a middleware hook raised
            record = ResultRecord.failure(exc, message.labels)
        return record

    async def _store(self, record: ResultRecord | None, message: TaskiqMessage) -> None:
        """Store the record; if the backend fails, its waiters still learn that (never a hang)."""
        if record is None:  # requeued: the new run will store the result
            return
        try:
            await self.result_backend.set_result(message.task_id, record)
        except Exception as exc:
            logger.exception("The result backend could not store the result of task %s.", message.task_id)
            failure = ResultSetError(
                f"The result of task {message.task_id} could not be stored by {type(self.result_backend).__name__}: "
                f"{type(exc).__name__}: {exc}. Fix the result backend; the run itself "
                f"{'failed' if record.is_err else 'succeeded'}."
            )
            record = ResultRecord.failure(failure, message.labels, record.execution_time)
            try:
                await self.result_backend.set_result(message.task_id, record)
            except Exception:  # noqa: BLE001 - a broken backend must still wake the waiter
                if isinstance(self.result_backend, InMemoryResultBackend):  # its own storage still works
                    await InMemoryResultBackend.set_result(self.result_backend, message.task_id, record)
                return
        for middleware in self.middlewares:
            if overrides(middleware, "post_save"):
                try:
                    await maybe_await(
                        middleware.post_save(message, TaskiqResult.from_record(record, task_id=message.task_id))
                    )
                except Exception:
                    logger.exception(
                        "Middleware %s failed in post_save of task %s.", type(middleware).__name__, message.task_id
                    )

    async def _run_with_retries(self, message: TaskiqMessage) -> ResultRecord | None:
        while True:
            record = await self.receiver.run(message)
            if record is None or record.error is None:
                return record
            decision = decide_retry(self, message, record.error.to_exception())
            if not decision.retry:
                return record
            if decision.store_failure:
                await self._store(record, message)
                if isinstance(self.result_backend, InMemoryResultBackend):
                    self.result_backend.still_running(message.task_id)
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            retries = int(message.labels.get(RETRIES_LABEL, 0))
            message = message.model_copy(update={"labels": {**message.labels, RETRIES_LABEL: retries + 1}})


def check_count(name: str, value: Any, *, minimum: int, unlimited: int | None, meaning: str = "no limit") -> Any:
    """`value` if it is a whole number >= `minimum` or the `unlimited` marker; else a BrokerError."""
    if value is unlimited or (type(value) is int and value >= minimum):
        return value
    raise BrokerError(
        f"{name}={value!r} is invalid: pass a whole number of at least {minimum}, or {unlimited} for {meaning}."
    )


def check_seconds(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf):
        return value
    raise BrokerError(f"{name}={value!r} is invalid: pass a number of seconds (0 or more), or None for no limit.")
