"""A warm pool worker (`python -m podiq.runtime.worker`, `podiq worker`): many TaskRuns, one process.

The worker reads its pool's Redis stream in the pool's consumer group and runs each claimed
attempt through the same code as a Job's pod (:mod:`podiq.runtime.running`): read the
TaskRun (from the API server's cache, at the version its entry names), run the task, write
the outcome to the TaskRun's status with the attempt guard, then acknowledge the entry. An
entry is acknowledged only once its attempt reported (or needs no running), so a worker
killed mid-run leaves it pending; another worker reclaims it after the visibility timeout
and records the lost attempt, retried by the run's policy.

Cancellation and timeouts stop the one run: the worker reads the cancellation signals of all
its running runs from Redis each second (the operator sets one when it cancels a pool run), and a task's ``timeout`` label bounds it as in
a pod. The worker keeps serving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from podiq._broker import AsyncBroker
from podiq._progress import TaskProgress
from podiq._receiver import Receiver
from podiq._result import ResultRecord
from podiq._result_backend import AsyncResultBackend
from podiq.exceptions import ResultSetError, StoreError
from podiq.kubernetes.api import ApiError, TaskRunApi
from podiq.kubernetes.attempts import fail_attempt
from podiq.kubernetes.connecting import api_client
from podiq.kubernetes.dispatch import Entry, PoolQueue
from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.offloading import store_log
from podiq.kubernetes.resources import TaskRun, TaskRunStatus
from podiq.kubernetes.storage import RedisStore, StoreSettings
from podiq.runtime.environment import (
    ENV_CONCURRENCY,
    ENV_IMPORTS,
    ENV_NAMESPACE,
    ENV_POD_NAME,
    ENV_POOL,
    ENV_PROGRESS_INTERVAL,
    ENV_VISIBILITY_TIMEOUT,
    RuntimeEnvironment,
)
from podiq.runtime.progress import TaskRunStatusBackend
from podiq.runtime.run_output import RunTail, current_tail, install
from podiq.runtime.running import (
    INFRASTRUCTURE_FAILURE,
    KeptChanging,
    exit_code,
    expire_arguments,
    load_broker,
    moved_on,
    report,
    stored_outcome,
    task_message,
    write_status,
)

logger = logging.getLogger("podiq.worker")


#: Milliseconds one XREADGROUP waits for a new entry before the loop looks around again.
BLOCK_MS = 1000
#: Seconds a run goes before the worker records it as Running (one more write, for long runs only).
RECORD_RUNNING_AFTER = 2.0
#: Seconds between the reads (one for all running runs) that tell which were cancelled.
POLL_SECONDS = 1.0
#: Seconds a stopping worker lets its runs finish before it leaves them to be reclaimed.
STOP_GRACE = 20.0


class WorkerSettings(BaseModel):
    """The worker's settings, read from PODIQ_* variables (the operator sets them)."""

    pool: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    pod_name: str = Field(min_length=1, description="The consumer name in the group, and status.podName of its runs.")
    concurrency: int = Field(default=8, ge=1, description="Runs served at once.")
    imports: list[str] = Field(default_factory=list, description="Task modules imported at start.")
    visibility_timeout: float = Field(
        default=30.0, ge=1, description="Seconds after which an unanswered claim is reclaimed."
    )
    progress_interval: float = Field(default=1.0, ge=0, description="Seconds between progress writes at most.")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ
        try:
            return cls(
                pool=env.get(ENV_POOL, ""),
                namespace=env.get(ENV_NAMESPACE, ""),
                pod_name=env.get(ENV_POD_NAME) or env.get("HOSTNAME", ""),
                concurrency=env.get(ENV_CONCURRENCY, "8"),  # type: ignore[arg-type]  # pydantic converts the string
                imports=[m.strip() for m in env.get(ENV_IMPORTS, "").split(",") if m.strip()],
                visibility_timeout=env.get(ENV_VISIBILITY_TIMEOUT, "30"),  # type: ignore[arg-type]  # pydantic converts the string
                progress_interval=env.get(ENV_PROGRESS_INTERVAL, "1.0"),  # type: ignore[arg-type]  # pydantic converts the string
            )
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise ValueError(
                f"the worker's environment is incomplete or wrong ({problems}). The operator sets {ENV_POOL}, "
                f"{ENV_NAMESPACE} and {ENV_POD_NAME} in a TaskPool's Deployment; run workers through a TaskPool."
            ) from None


class _ProgressRouter(AsyncResultBackend):
    """The brokers' result backend in a worker: each run's progress goes to its own TaskRun."""

    def __init__(self) -> None:
        self.runs: dict[str, TaskRunStatusBackend] = {}

    async def set_progress(self, task_id: str, progress: TaskProgress) -> None:
        backend = self.runs.get(task_id)
        if backend is not None:
            await backend.set_progress(task_id, progress)

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        backend = self.runs.get(task_id)
        return None if backend is None else await backend.get_progress(task_id)

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        raise ResultSetError("In a pool worker, results are written to the TaskRun's status by the worker.")

    async def is_result_ready(self, task_id: str) -> bool:
        return False

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        raise ResultSetError("A pool worker does not read results.")


@dataclasses.dataclass
class _Running:
    entry: Entry
    task: asyncio.Task[None]


class Worker:
    """Serves one pool's stream until :meth:`stop`."""

    def __init__(self, settings: WorkerSettings, store_settings: StoreSettings | None = None) -> None:
        self.settings = settings
        self.store_settings = store_settings or StoreSettings.from_env()
        if not self.store_settings.url:
            raise ValueError(
                "a pool worker needs Redis: set PODIQ_REDIS_URL (the operator passes its namespace's URL)."
            )
        self.store = RedisStore(self.store_settings)
        self.queue = PoolQueue(self.store, settings.namespace, settings.pool)
        self.router = _ProgressRouter()
        self.brokers: list[AsyncBroker] = []
        self.running: dict[str, _Running] = {}
        self.cancels: dict[str, asyncio.Event] = {}  # running TaskRun -> set once it is cancelled
        self.stopping = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="podiq-sync")
        self.receivers: dict[int, Receiver] = {}

    def stop(self) -> None:
        self.stopping.set()

    async def serve(self) -> None:
        await self.queue.ensure_group()
        for module in self.settings.imports:
            __import__(module)
        async with await api_client() as connection:
            self.api = TaskRunApi(connection)
            keeper = asyncio.create_task(self._keep_claims(), name="podiq-worker-claims")
            logger.info(
                "Worker %s serves pool %s/%s, %s runs at once.",
                self.settings.pod_name,
                self.settings.namespace,
                self.settings.pool,
                self.settings.concurrency,
            )
            try:
                await self._claim_loop()
                await self._drain()
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                for broker in self.brokers:
                    await broker.shutdown()
                await self.store.close()
                self.executor.shutdown(wait=False, cancel_futures=True)

    async def _claim_loop(self) -> None:
        settings = self.settings
        idle_ms = int(settings.visibility_timeout * 1000)
        reclaim_every = max(settings.visibility_timeout / 3, 0.5)
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        while not self.stopping.is_set():
            free = settings.concurrency - len(self.running)
            if free <= 0:
                await self._wait_for_a_slot()
                continue
            try:
                entries: list[Entry] = []
                if loop.time() >= next_reclaim:
                    entries = await self.queue.reclaim(settings.pod_name, idle_ms, free)
                    next_reclaim = loop.time() + reclaim_every
                if not entries:
                    entries = await self.queue.claim(settings.pod_name, free, BLOCK_MS)
            except StoreError as exc:
                logger.error("Cannot read pool %s: %s; trying again in 1 s.", settings.pool, exc)
                await asyncio.sleep(1.0)
                continue
            for entry in entries:
                if entry.id in self.running:
                    continue  # reclaimed from ourselves: the run is still going here
                task = asyncio.create_task(self._serve(entry), name=f"podiq-run-{entry.taskrun}-{entry.attempt}")
                self.running[entry.id] = _Running(entry, task)
                task.add_done_callback(functools.partial(self._forget, entry.id))

    def _forget(self, entry_id: str, _: asyncio.Task[None]) -> None:
        self.running.pop(entry_id, None)

    async def _wait_for_a_slot(self) -> None:
        tasks = [r.task for r in self.running.values()]
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _drain(self) -> None:
        tasks = [r.task for r in self.running.values()]
        if tasks:
            logger.info(
                "Stopping: %s runs get %s s to finish; the rest are reclaimed by other workers.", len(tasks), STOP_GRACE
            )
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
            cut = [r.entry for r in self.running.values() if r.task in late]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            # Said at once, as a Job's deleted pod is, rather than left for a reclaim after the visibility timeout.
            for entry in cut:
                try:
                    await self._stopped(entry)
                except Exception:
                    logger.exception(
                        "TaskRun %s: the stopped attempt %s is left to be reclaimed.", entry.taskrun, entry.attempt
                    )

    async def _stopped(self, entry: Entry) -> None:
        """Record an attempt this stopping worker cut short, retried per policy, and acknowledge it."""
        body = await self.api.get(entry.namespace, entry.taskrun)
        if body is not None:
            taskrun = TaskRun.from_api(body)
            if not (moved_on(taskrun, entry.attempt) or taskrun.cancel_requested()):
                message = (
                    f"Its pool worker {self.settings.pod_name} was stopped (SIGTERM: its pod was deleted, evicted "
                    f"or scaled down) and the run did not finish within {STOP_GRACE:g} s."
                )
                await self._lost(taskrun, entry, "WorkerStopped", message)
        await self.queue.ack(entry.id)

    async def _keep_claims(self) -> None:
        """Renew the claims of runs still going here, so that long runs are not reclaimed, and
        stop the runs the operator cancelled."""
        loop = asyncio.get_running_loop()
        renew_every = self.settings.visibility_timeout / 3
        renewed = loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                for name in await self.queue.cancelled(list(self.cancels)):
                    if (cancelled := self.cancels.get(name)) is not None:  # unless it ended during the read
                        cancelled.set()
                if loop.time() - renewed >= renew_every:
                    await self.queue.touch(self.settings.pod_name, list(self.running))
                    renewed = loop.time()
            except StoreError as exc:
                logger.warning("Cannot renew claims or read cancellations: %s", exc)

    async def _serve(self, entry: Entry) -> None:
        try:
            await self._attempt(entry)
        except asyncio.CancelledError:
            return  # stopping: the entry stays pending and is reclaimed
        except Exception:
            # Left pending: after the visibility timeout a worker records the attempt as lost.
            logger.exception("Attempt %s of TaskRun %s could not be run or reported.", entry.attempt, entry.taskrun)
            return
        try:
            await self.queue.ack(entry.id)
        except StoreError as exc:
            logger.warning("Cannot acknowledge TaskRun %s: %s; it reports once anyway.", entry.taskrun, exc)

    async def _attempt(self, entry: Entry) -> None:
        settings = self.settings
        body = await self._read(entry)
        if body is None:
            logger.info("TaskRun %s/%s is gone; nothing to run.", entry.namespace, entry.taskrun)
            return
        taskrun = TaskRun.from_api(body)
        if moved_on(taskrun, entry.attempt) or taskrun.cancel_requested():
            return
        if taskrun.time_until_start(datetime.now(UTC)) is not None and not taskrun.status.attempts:
            # Enqueued before its spec.notBefore (by an older client, say): dropped with its marker,
            # so that the operator enqueues it again once it is due.
            await self.queue.forget(taskrun.name, entry.attempt)
            logger.info(
                "TaskRun %s is held back until %s; left to the operator.", taskrun.name, taskrun.spec.not_before
            )
            return
        if entry.deliveries > 1:  # handed out before, and that worker never reported
            message = (
                f"The pool worker running it stopped answering for {self.settings.visibility_timeout:g} s "
                f"(claimed {entry.deliveries - 1} time(s) before)."
            )
            await self._lost(taskrun, entry, "WorkerLost", message)
            return
        environment = RuntimeEnvironment(
            taskrun_name=taskrun.name,
            namespace=taskrun.namespace,
            attempt=entry.attempt,
            pod_name=settings.pod_name,
            imports=settings.imports,
            progress_interval=settings.progress_interval,
        )
        started = datetime.now(UTC)
        backend = TaskRunStatusBackend(self.api, taskrun.namespace, taskrun.name, settings.progress_interval)
        self.router.runs[taskrun.task_id] = backend
        recorder = asyncio.create_task(self._record_running(taskrun, environment, started))
        # The run's own output (print, logging, its sync threads): the tasks made below inherit it.
        tail = RunTail(self.store_settings.log_tail)
        token = current_tail.set(tail)
        try:
            code, record = await self._execute_until_stopped(taskrun, environment)
        finally:
            current_tail.reset(token)
            self.router.runs.pop(taskrun.task_id, None)
            recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            taskrun = await recorder or taskrun  # report from what the Running write returned
        if code is None:
            await backend.close()
            return  # cancelled or finished elsewhere: nothing to report
        kept, dropped = tail.value()
        log_ref = (
            await store_log(self.store, self.store_settings, taskrun, entry.attempt, kept, dropped) if kept else None
        )
        outcome = await stored_outcome(self.store, self.store_settings, taskrun, entry.attempt, code, record)
        final = await report(self.api, taskrun, outcome, backend, environment, started, log_ref)
        if final is None:
            return
        if final.is_done():
            await expire_arguments(self.store, self.store_settings, final)
        elif final.status.wants_next_attempt():
            await self._enqueue_next(final)

    async def _enqueue_next(self, taskrun: TaskRun) -> None:
        """Add the run's next attempt (a retry or requeue just written) to the stream, at the version written."""
        await self.queue.enqueue(
            taskrun.name, taskrun.status.attempts + 1, version=taskrun.metadata.resource_version or ""
        )

    async def _read(self, entry: Entry) -> dict[str, Any] | None:
        """The entry's TaskRun at the version it names or newer, which the API server serves from its
        watch cache (a read from etcd cost it as much as the run's create); from etcd when the entry
        names none, or when the cache did not reach that version within the server's wait (504)."""
        if entry.version:
            try:
                return await self.api.get(entry.namespace, entry.taskrun, resource_version=entry.version)
            except ApiError as exc:
                if exc.status != 504:
                    raise
        return await self.api.get(entry.namespace, entry.taskrun)

    async def _record_running(
        self, taskrun: TaskRun, environment: RuntimeEnvironment, started: datetime
    ) -> TaskRun | None:
        """A run still going after :data:`RECORD_RUNNING_AFTER` is recorded as Running on this pod,
        so that `kubectl get taskruns` shows where it runs; a fast run writes its outcome only."""
        await asyncio.sleep(RECORD_RUNNING_AFTER)

        def running(current: TaskRun) -> TaskRunStatus | None:
            # Cancelled or moved on meanwhile: the report handles it.
            if moved_on(current, environment.attempt) or current.cancel_requested():
                return None
            status = current.status.model_copy()
            status.record_attempt(environment.attempt, None, started)
            status.pod_name = environment.pod_name
            return status

        try:  # its progress writes (unconditional merges) change the run every second: conflicts are read again
            return await write_status(self.api, taskrun, running)
        except KeptChanging:
            return None

    async def _execute_until_stopped(
        self, taskrun: TaskRun, environment: RuntimeEnvironment
    ) -> tuple[ExitCode | None, ResultRecord]:
        """Run the task; stop it when the operator signals that the run was cancelled."""
        run = asyncio.create_task(self._execute(taskrun, environment))
        cancelled = self.cancels[taskrun.name] = asyncio.Event()
        ended = asyncio.create_task(cancelled.wait())
        try:
            await asyncio.wait([run, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            self.cancels.pop(taskrun.name, None)
        if run.done():
            return run.result()
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run
        logger.info("Stopped attempt %s of TaskRun %s: it was cancelled.", environment.attempt, taskrun.name)
        return None, ResultRecord()

    async def _execute(self, taskrun: TaskRun, environment: RuntimeEnvironment) -> tuple[ExitCode, ResultRecord]:
        message = await task_message(taskrun, self.store)
        if isinstance(message, ResultRecord):
            return ExitCode.TASK_ERROR, message
        try:
            broker = load_broker(message.task_name, environment.imports)
        except Exception as exc:
            logger.exception("Cannot load task %s.", message.task_name)
            return ExitCode.TASK_ERROR, ResultRecord.failure(exc, message.labels)
        receiver = self.receivers.get(id(broker))
        if receiver is None:  # each broker is started once and kept warm
            broker.is_worker_process = True
            broker.result_backend = self.router
            await broker.startup()
            self.brokers.append(broker)
            receiver = self.receivers[id(broker)] = Receiver(broker, self.executor)
        return exit_code(await receiver.run(message), message)

    async def _lost(self, taskrun: TaskRun, entry: Entry, reason: str, message: str) -> None:
        """A worker claimed this attempt and could not finish it: record it as failed, retry per policy."""

        def failed(current: TaskRun) -> TaskRunStatus | None:
            if moved_on(current, entry.attempt):
                return None
            now = datetime.now(UTC)
            status = current.status.model_copy()
            status.record_attempt(entry.attempt, None, now)
            return fail_attempt(current.spec, status, reason, message, now)

        written = await write_status(self.api, taskrun, failed)
        if written is None:
            return
        logger.warning(
            "TaskRun %s: attempt %s was lost with its worker; %s.", written.name, entry.attempt, written.status.message
        )
        if written.status.wants_next_attempt():
            await self._enqueue_next(written)


def main() -> int:
    install()  # before logging's handler takes sys.stderr, so that a run's log records are its output too
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        worker = Worker(WorkerSettings.from_environ())
    except ValueError as exc:
        print(f"podiq worker: {exc}", file=sys.stderr)
        return INFRASTRUCTURE_FAILURE

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.serve()

    try:
        asyncio.run(run())
    except Exception:
        logger.exception("podiq worker: stopped by an error.")
        return INFRASTRUCTURE_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
