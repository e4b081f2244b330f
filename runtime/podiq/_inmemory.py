"""The in-process broker: tasks run on this event loop, results wake their waiters at once."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from podiq._broker import AsyncBroker
from podiq._labels import RETRIES_LABEL, TaskOptions
from podiq._message import TaskiqMessage
from podiq._middleware import maybe_await, overrides
from podiq._progress import TaskProgress
from podiq._receiver import Receiver
from podiq._result import ResultRecord, TaskiqResult
from podiq._result_backend import AsyncResultBackend
from podiq.exceptions import ResultGetError, TaskCancelledError, TaskiqResultTimeoutError, UnknownTaskError


class InMemoryResultBackend(AsyncResultBackend):
    """Results and progress in a dict; `max_stored_results` (-1: no limit) drops the oldest."""

    def __init__(self, max_stored_results: int = -1) -> None:
        self.max_stored_results = max_stored_results
        self.results: dict[str, ResultRecord] = {}
        self.progress: dict[str, TaskProgress] = {}
        self._waiters: dict[str, list[asyncio.Future[ResultRecord]]] = {}

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        self.results[task_id] = result
        self.progress.pop(task_id, None)
        if 0 <= self.max_stored_results < len(self.results):
            del self.results[next(iter(self.results))]
        for waiter in self._waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(result)

    async def is_result_ready(self, task_id: str) -> bool:
        # Yield once, as a network round trip would, so runs that can finish now do.
        await asyncio.sleep(0)
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        try:
            return self.results[task_id]
        except KeyError:
            raise ResultGetError(f"No result for task {task_id}: it has not finished, or was never sent.") from None

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
        waiter: asyncio.Future[ResultRecord] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(task_id, [])
        waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TaskiqResultTimeoutError(f"Task {task_id} did not finish within {timeout} s.") from None
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(task_id, None)


class InMemoryBroker(AsyncBroker):
    """Runs tasks concurrently on the current event loop; plain functions in a thread pool.

    `max_async_tasks` bounds how many runs execute at once (None: no bound); the rest wait in
    order. `wait_all()` returns when every sent run has finished.
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
    ) -> None:
        self._max_stored_results = max_stored_results
        super().__init__(result_backend=result_backend, task_id_generator=task_id_generator)
        self._pool_size = sync_tasks_pool_size
        self.executor = self._new_executor()
        self.receiver = Receiver(self, self.executor)
        self.max_async_tasks = max_async_tasks
        # Made on first use on each event loop, so a broker built at import time works on any loop.
        self._limit: asyncio.Semaphore | None = None
        self._limit_loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel_at_start: set[str] = set()

    def default_result_backend(self) -> AsyncResultBackend:
        return InMemoryResultBackend(self._max_stored_results)

    async def kick(self, message: TaskiqMessage) -> None:
        if message.task_name not in self.local_task_registry:
            raise UnknownTaskError(message.task_name, "this InMemoryBroker")
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
        await self.wait_all()
        await super().shutdown()
        self.executor.shutdown(wait=False, cancel_futures=True)
        # A fresh pool (its threads start on first use), so the broker can be started again.
        self.executor = self.receiver.executor = self._new_executor()

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
                record = await self._run_with_retries(message)
            else:
                loop = asyncio.get_running_loop()
                if self._limit is None or self._limit_loop is not loop:
                    self._limit, self._limit_loop = asyncio.Semaphore(self.max_async_tasks), loop
                async with self._limit:
                    record = await self._run_with_retries(message)
        except asyncio.CancelledError:
            record = ResultRecord.failure(TaskCancelledError(f"Task {message.task_id} was cancelled."), message.labels)
        except Exception as exc:  # e.g. a middleware hook raised
            record = ResultRecord.failure(exc, message.labels)
        return record

    async def _store(self, record: ResultRecord | None, message: TaskiqMessage) -> None:
        if record is None:  # requeued: the new run will store the result
            return
        await self.result_backend.set_result(message.task_id, record)
        for middleware in self.middlewares:
            if overrides(middleware, "post_save"):
                result = TaskiqResult.from_record(record, task_id=message.task_id)
                await maybe_await(middleware.post_save(message, result))

    async def _run_with_retries(self, message: TaskiqMessage) -> ResultRecord | None:
        options = TaskOptions.from_labels(message.labels) if message.labels else None
        while True:
            record = await self.receiver.run(message)
            if record is None or options is None or not record.is_err:
                return record
            retries = int(message.labels.get(RETRIES_LABEL, 0))
            if not options.should_retry(record.error.type if record.error else None, retries):
                return record
            message = message.model_copy(update={"labels": {**message.labels, RETRIES_LABEL: retries + 1}})
