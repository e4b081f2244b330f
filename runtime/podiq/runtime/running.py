"""One attempt of one TaskRun, from reading it to writing its outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from podiq._broker import AsyncBroker, find_registered_task
from podiq._labels import RETRIES_LABEL
from podiq._message import TaskiqMessage
from podiq._receiver import Receiver
from podiq._result import ResultRecord
from podiq.exceptions import StoreError, UnknownTaskError
from podiq.kubernetes.api import ConflictError, TaskRunApi
from podiq.kubernetes.attempts import finish_attempt
from podiq.kubernetes.connecting import api_client
from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.offloading import load_arguments, store_log, store_result, stored_ttl
from podiq.kubernetes.resources import (
    Progress,
    ResultTooLargeError,
    StoredValue,
    TaskRun,
    TaskRunStatus,
    encode_result,
    status_patch,
)
from podiq.kubernetes.storage import RedisStore, StoreSettings
from podiq.runtime.environment import RuntimeEnvironment
from podiq.runtime.output import OutputTail
from podiq.runtime.progress import TaskRunStatusBackend

logger = logging.getLogger("podiq.runtime")

#: Exit code for failures before the task could run (no TaskRun, no API): the operator
#: treats any code outside ExitCode as an infrastructure failure.
INFRASTRUCTURE_FAILURE = 70
#: Conditional status writes tried before giving up on reporting.
REPORT_TRIES = 5
#: Seconds the runtime keeps trying to reach an API server that is away (restarting, say)
#: before the attempt fails; the backoff between tries doubles up to the last figure.
API_PATIENCE, API_BACKOFF = 120.0, (0.5, 5.0)

T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    """Errors worth waiting out: no connection, a timeout, the server busy or restarting.

    An API server that has just restarted refuses tokens and requests (401, 403) while its
    authentication and RBAC caches fill; a runtime whose Role is really missing fails the
    same way, only later, with the same message.
    """
    if isinstance(exc, ApiException):
        return exc.status in (0, 401, 403, 429) or exc.status >= 500
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError))


async def patiently(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, tried again through transient API errors for up to :data:`API_PATIENCE` seconds."""
    deadline = asyncio.get_running_loop().time() + API_PATIENCE
    delay = API_BACKOFF[0]
    while True:
        try:
            return await call()
        except Exception as exc:
            if not _transient(exc) or asyncio.get_running_loop().time() + delay > deadline:
                raise
            logger.warning("Could not %s (%s); trying again in %.1f s.", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, API_BACKOFF[1])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        environment = RuntimeEnvironment.from_environ()
    except ValueError as exc:
        print(f"podiq runtime: {exc}", file=sys.stderr)
        return INFRASTRUCTURE_FAILURE
    try:
        return int(asyncio.run(run_attempt(environment)))
    except Exception:
        logger.exception("podiq runtime: the attempt could not be run or reported.")
        return INFRASTRUCTURE_FAILURE


async def run_attempt(environment: RuntimeEnvironment, settings: StoreSettings | None = None) -> ExitCode | int:
    # Redis comes from the pod's environment (the operator's Secret), never from the TaskRun.
    settings = settings or StoreSettings.from_env()
    store = RedisStore(settings) if settings.url else None
    try:
        return await _run_attempt(environment, settings, store)
    finally:
        if store is not None:
            await store.close()


async def _run_attempt(
    environment: RuntimeEnvironment, settings: StoreSettings, store: RedisStore | None
) -> ExitCode | int:
    async with await api_client() as connection:
        api = TaskRunApi(connection)
        started = datetime.now(UTC)
        body = await patiently("read the TaskRun", lambda: api.get(environment.namespace, environment.taskrun_name))
        if body is None:
            logger.error("TaskRun %s/%s does not exist.", environment.namespace, environment.taskrun_name)
            return INFRASTRUCTURE_FAILURE
        taskrun = TaskRun.from_api(body)
        if moved_on(taskrun, environment.attempt) or taskrun.cancel_requested():
            # A pod of an attempt that is no longer current must not run the task again.
            logger.warning(
                "TaskRun %s is at attempt %s (phase %s%s); attempt %s has nothing to do.",
                taskrun.name,
                taskrun.status.attempts,
                taskrun.status.phase,
                ", cancelled" if taskrun.cancel_requested() else "",
                environment.attempt,
            )
            return INFRASTRUCTURE_FAILURE
        backend = TaskRunStatusBackend(api, taskrun.namespace, taskrun.name, environment.progress_interval)
        output = OutputTail(settings.log_tail if store is not None else 0).start()
        try:
            code, record = await execute(taskrun, environment, backend, store)
        finally:
            kept, dropped = output.stop()
        log_ref = (
            await store_log(store, settings, taskrun, environment.attempt, kept, dropped) if store and kept else None
        )
        outcome = await stored_outcome(store, settings, taskrun, environment.attempt, code, record)
        final = await report(api, taskrun, outcome, backend, environment, started, log_ref)
        if store is not None and final is not None and final.is_done():
            await expire_arguments(store, settings, final)
        return outcome.code


def moved_on(taskrun: TaskRun, attempt: int) -> bool:
    """Whether the run is over, or ``attempt`` already reported, or a newer one exists.

    An older ``status.attempts`` is fine: the operator records an attempt lazily, and this
    pod's Job is the proof that it started.
    """
    status = taskrun.status
    return taskrun.is_done() or status.attempts > attempt or status.has_report_for(attempt)


async def execute(
    taskrun: TaskRun,
    environment: RuntimeEnvironment,
    backend: TaskRunStatusBackend,
    store: RedisStore | None = None,
) -> tuple[ExitCode, ResultRecord]:
    """Run the task as any worker would; the exit code says what the operator does next."""
    message = await task_message(taskrun, store)
    if isinstance(message, ResultRecord):
        return ExitCode.TASK_ERROR, message
    try:
        broker = load_broker(message.task_name, environment.imports)
    except Exception as exc:  # the task cannot even be found: an error result says why
        logger.exception("Cannot load task %s.", message.task_name)
        return ExitCode.TASK_ERROR, ResultRecord.failure(exc, message.labels)
    broker.is_worker_process = True
    broker.result_backend = backend
    with ThreadPoolExecutor(thread_name_prefix="podiq-sync") as executor:
        await broker.startup()
        try:
            record = await Receiver(broker, executor).run(message)
        finally:
            await broker.shutdown()
    return exit_code(record, message)


async def task_message(taskrun: TaskRun, store: RedisStore | None) -> TaskiqMessage | ResultRecord:
    """The message the task receives, or the error result when its arguments cannot be read."""
    labels = taskrun.message_labels()
    if taskrun.status.retries:  # as taskiq's retry middleware counts them
        labels[RETRIES_LABEL] = taskrun.status.retries
    try:
        args, kwargs = await load_arguments(store, taskrun)
    except StoreError as exc:  # retried by the policy: Redis may be back, or the arguments are gone for good
        logger.error("Cannot read the arguments: %s", exc)
        return ResultRecord.failure(exc, labels)
    return TaskiqMessage(
        task_id=taskrun.task_id, task_name=taskrun.spec.task_name, labels=labels, args=args, kwargs=kwargs
    )


def exit_code(record: ResultRecord | None, message: TaskiqMessage) -> tuple[ExitCode, ResultRecord]:
    """What a run's record means for the attempt: requeued (no record), rejected, failed or succeeded."""
    if record is None:
        return ExitCode.REQUEUE, ResultRecord(labels=message.labels)
    if record.is_err and record.error is not None and record.error.type == "TaskRejectedError":
        return ExitCode.REJECTED, record
    return (ExitCode.TASK_ERROR if record.is_err else ExitCode.SUCCEEDED), record


def load_broker(task_name: str, imports: list[str]) -> AsyncBroker:
    """Import the task's module (and PODIQ_IMPORTS) and return the broker that holds the task."""
    for module in [*imports, task_name.partition(":")[0]]:
        if module:
            importlib.import_module(module)
    task = find_registered_task(task_name)
    if task is None:
        raise UnknownTaskError(task_name, "any broker in the runtime image (check the image and PODIQ_IMPORTS)")
    return task.broker


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How the attempt ended, with its result inline or stored, ready for the status."""

    code: ExitCode
    result: dict[str, Any] | None
    result_ref: StoredValue | None = None
    message: str = ""


async def stored_outcome(
    store: RedisStore | None,
    settings: StoreSettings,
    taskrun: TaskRun,
    attempt: int,
    code: ExitCode,
    record: ResultRecord,
) -> Outcome:
    """The result inline, or in Redis when large; a result that cannot be kept fails the attempt
    (retried by the policy) with an error that says why."""
    try:
        result, ref = await store_result(store, settings, taskrun, attempt, record)
        return Outcome(code, result, ref)
    except ResultTooLargeError as exc:
        return Outcome(ExitCode.TASK_ERROR, encode_result(ResultRecord.failure(exc, record.labels)))
    except StoreError as exc:
        logger.error("Cannot store the result: %s", exc)
        message = f"Attempt {attempt}: its result could not be stored in Redis. {exc}"
        return Outcome(
            ExitCode.TASK_ERROR, encode_result(ResultRecord.failure(exc, record.labels)), message=message[:30000]
        )


async def expire_arguments(store: RedisStore, settings: StoreSettings, taskrun: TaskRun) -> None:
    """Once the run is over, its stored arguments expire with its TTL."""
    if taskrun.spec.args_ref is None:
        return
    try:
        await store.expire([taskrun.spec.args_ref.key], stored_ttl(taskrun.spec, settings))
    except StoreError as exc:
        logger.warning("The arguments' TTL was not shortened (they expire after %s s): %s", settings.ttl, exc)


class KeptChanging(RuntimeError):
    """The TaskRun changed between every read and write of :data:`REPORT_TRIES` tries."""


StatusChange = Callable[[TaskRun], TaskRunStatus | None]
"""The status to write, given the TaskRun as just read; None when there is nothing to write
(the run moved on)."""


async def write_status(
    api: TaskRunApi, taskrun: TaskRun, change: StatusChange, *, patient: bool = False
) -> TaskRun | None:
    """Write ``change(taskrun)``, conditional on the resourceVersion it was made from, so that it never
    overwrites what another writer did meanwhile (the operator's cancellation, say); on a conflict,
    read the run again and ask ``change`` again. ``patient`` waits out an API server that is away,
    as a Job's runtime must (:func:`patiently`).

    Returns the TaskRun as written, at the version written; None when ``change`` said there was
    nothing to write or the run is gone. Raises :class:`KeptChanging` after :data:`REPORT_TRIES`
    conflicts.
    """

    async def call(what: str, request: Callable[[], Awaitable[T]]) -> T:
        return await patiently(what, request) if patient else await request()

    for _ in range(REPORT_TRIES):
        status = change(taskrun)
        if status is None:
            return None
        try:
            written = await call(
                "write the status",
                functools.partial(
                    api.patch_status,
                    taskrun.namespace,
                    taskrun.name,
                    status_patch(taskrun.status, status),
                    resource_version=taskrun.metadata.resource_version,
                ),
            )
        except ConflictError:
            body = await call("read the TaskRun", functools.partial(api.get, taskrun.namespace, taskrun.name))
            if body is None:
                return None
            taskrun = TaskRun.from_api(body)
            continue
        metadata = taskrun.metadata.model_copy(update={"resource_version": written["metadata"].get("resourceVersion")})
        return taskrun.model_copy(update={"status": status, "metadata": metadata})
    raise KeptChanging(f"TaskRun {taskrun.name} kept changing; its status could not be written.")


async def report(
    api: TaskRunApi,
    taskrun: TaskRun,
    outcome: Outcome,
    backend: TaskRunStatusBackend,
    environment: RuntimeEnvironment,
    started: datetime,
    log_ref: StoredValue | None = None,
) -> TaskRun | None:
    """Write the attempt's outcome, with the last progress, in one status write; it records
    the attempt itself too when the operator has not yet. Returns the TaskRun as written, or
    None when nothing was (the run moved on before the attempt reported).
    """
    await backend.close()
    code = outcome.code
    attempt = environment.attempt
    requeued = code is ExitCode.REQUEUE

    def outcome_status(current: TaskRun) -> TaskRunStatus | None:
        if moved_on(current, attempt):
            logger.warning(
                "TaskRun %s moved on (%s) before attempt %s reported.", current.name, current.status.phase, attempt
            )
            return None
        status = current.status.model_copy()  # shallow: the transitions below only assign fields
        status.record_attempt(attempt, environment.job_name, started)
        if backend.latest is not None:
            status.set_progress(Progress.of(backend.latest))
        return finish_attempt(
            current.spec,
            status,
            code,
            datetime.now(UTC),
            result=None if requeued else outcome.result,
            result_ref=None if requeued else outcome.result_ref,
            log_ref=log_ref,
            message=outcome.message,
            pod_name=environment.pod_name,
        )

    try:
        return await write_status(api, taskrun, outcome_status, patient=True)
    except KeptChanging:
        raise KeptChanging(f"TaskRun {taskrun.name} kept changing; attempt {attempt} could not report.") from None
